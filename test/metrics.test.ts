import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import Fastify from 'fastify'
import { Registry, register as defaultRegistry } from 'prom-client'
import wsGateway from '../lib/index'
import { attachMetrics } from '../lib/metrics/metrics'
import { BACKEND_ID, SECRET, authHeaders, closeOf, connect, connectWithId, deadPort, handshake, nextMessage, startBackend, startGateway, until } from './helpers'
import { parseMetrics, scrape, valueOf } from './pool-helpers'

t.test('the series agree with stats() and with what happened, read from the exposition text', async (t) => {
  const backend = await startBackend(t)
  const registry = new Registry()
  const gateway = await startGateway(t, {
    backends: { [BACKEND_ID]: backend.url, Down: `ws://127.0.0.1:${await deadPort()}` },
    jwt: { secret: SECRET },
    heartbeatInterval: 0,
    rateLimit: { messagesPerSecond: 2, onExceeded: 'close' },
    metrics: { registry }
  })
  const labels = { path: '/ws', backend: BACKEND_ID }

  const ws = await connect(gateway.url)
  ws.send('hello')
  await nextMessage(ws)
  ws.send(Buffer.alloc(10))
  await nextMessage(ws)
  let samples = await scrape(registry)
  const stats = gateway.app.wsGateway.stats()
  t.equal(valueOf(samples, 'ws_gateway_connections_open', labels), 1)
  t.equal(valueOf(samples, 'ws_gateway_messages_total', { ...labels, direction: 'from_client' }), stats.fromClient.frames)
  t.equal(valueOf(samples, 'ws_gateway_bytes_total', { ...labels, direction: 'from_client' }), 15)
  t.equal(valueOf(samples, 'ws_gateway_bytes_total', { ...labels, direction: 'from_backend' }), stats.fromBackend.bytes)
  t.equal(valueOf(samples, 'ws_gateway_handshakes_total', { ...labels, status: '101' }), stats.total)
  t.equal(valueOf(samples, 'ws_gateway_handshake_duration_seconds_count', labels), 1)
  t.ok(valueOf(samples, 'ws_gateway_handshake_duration_seconds_bucket', { ...labels, le: '+Inf' }) === 1)
  t.equal(valueOf(samples, 'ws_gateway_endpoints', { ...labels, state: 'healthy' }), 1)

  // The rate limit (2 messages a second, with ws's first two used) closes the client 1008.
  ws.send('three')
  t.equal((await closeOf(ws)).code, 1008)
  await until(() => gateway.app.wsGateway.stats().open === 0, 'the connection closed')
  t.equal((await handshake(gateway.port, { id: BACKEND_ID })).status, 401)
  t.equal((await handshake(gateway.port, authHeaders({ id: 'Nope' }))).status, 404)
  t.equal((await handshake(gateway.port, authHeaders({ id: 'Down' }))).status, 502)

  samples = await scrape(registry)
  t.equal(valueOf(samples, 'ws_gateway_connections_open', labels), 0)
  t.equal(valueOf(samples, 'ws_gateway_policy_closes_total', { ...labels, reason: 'rate_limit' }), 1)
  t.equal(valueOf(samples, 'ws_gateway_closes_total', { ...labels, side: 'client', code: '1008' }), 1)
  t.equal(valueOf(samples, 'ws_gateway_closes_total', { ...labels, side: 'backend', code: '1001' }), 1)
  t.equal(valueOf(samples, 'ws_gateway_connection_duration_seconds_count', labels), 1)
  t.equal(valueOf(samples, 'ws_gateway_handshakes_total', { path: '/ws', backend: '', status: '401', code: 'FST_WS_GATEWAY_NO_TOKEN' }), 1)
  t.equal(valueOf(samples, 'ws_gateway_handshakes_total', { path: '/ws', backend: '', status: '404', code: 'FST_WS_GATEWAY_UNKNOWN_BACKEND' }), 1,
    'an unknown ID is not a label: the client chose it')
  t.equal(valueOf(samples, 'ws_gateway_handshakes_total', { path: '/ws', backend: 'Down', status: '502', code: 'FST_WS_GATEWAY_BAD_GATEWAY' }), 1)
  const rejected = gateway.app.wsGateway.stats().rejected
  const refusals = samples.filter((s) => s.name === 'ws_gateway_handshakes_total' && s.labels.status !== '101')
  t.same(Object.fromEntries(refusals.map((s) => [s.labels.code, s.value])), rejected, 'refusals by code, as stats() counts them')
  t.equal(new Set(samples.flatMap((s) => Object.keys(s.labels))).size, 9, 'labels: path, backend, status, code, side, direction, reason, state, le')
})

t.test('an error of the app\'s own hook is counted as its 500, and one without a status as 500 INTERNAL', async (t) => {
  const backend = await startBackend(t)
  const registry = new Registry()
  const gateway = await startGateway(t, {
    backends: { [BACKEND_ID]: { urls: [backend.url], balance: 'least-connections' } },
    jwt: { secret: SECRET },
    rewriteRequestHeaders: () => { throw new Error('the app\'s bug') },
    metrics: { registry }
  })
  t.equal((await handshake(gateway.port, authHeaders())).status, 500)
  const samples = await scrape(registry)
  t.equal(valueOf(samples, 'ws_gateway_handshakes_total', { backend: BACKEND_ID, status: '500', code: 'FST_WS_GATEWAY_CALLBACK_FAILED' }), 1)
  t.equal(backend.sockets.length, 0, 'the backend was never dialed')
  // An error of the gateway's own making carries no code or status: Fastify answers it 500.
  const { path } = attachMetrics(registry, { path: '/other', stats: () => gateway.app.wsGateway.stats(), endpointStates: () => new Map(), ejections: new Map(), cluster: () => undefined })
  path.refused('', 'INTERNAL', undefined)
  t.equal(valueOf(await scrape(registry), 'ws_gateway_handshakes_total', { path: '/other', status: '500', code: 'INTERNAL' }), 1)
})

t.test('dropped messages and application close codes (bucketed)', async (t) => {
  const backend = await startBackend(t)
  const registry = new Registry()
  const gateway = await startGateway(t, {
    backends: { [BACKEND_ID]: backend.url },
    jwt: { secret: SECRET },
    rateLimit: { messagesPerSecond: 1, onExceeded: 'drop' },
    metrics: { registry }
  })
  const ws = await connect(gateway.url)
  for (let i = 0; i < 4; i++) ws.send('x')
  await until(() => gateway.app.wsGateway.stats().dropped > 0, 'a dropped message')
  ws.close(4321, 'app reason')
  await until(() => gateway.app.wsGateway.stats().open === 0, 'the connection closed')
  // A close through the registry API is counted as `api`, never under the app's own reason.
  const closedByApp = await connectWithId(gateway.url)
  const closed = closeOf(closedByApp.ws)
  await gateway.app.wsGateway.close(closedByApp.id, 4000, 'see you')
  t.same(await closed, { code: 4000, reason: 'see you' })
  await until(() => gateway.app.wsGateway.stats().open === 0, 'the second connection closed')
  const samples = await scrape(registry)
  const labels = { path: '/ws', backend: BACKEND_ID }
  t.equal(valueOf(samples, 'ws_gateway_policy_closes_total', { ...labels, reason: 'api' }), 1)
  t.equal(samples.filter((s) => s.labels.reason === 'see_you' || s.labels.reason === 'see you').length, 0)
  t.equal(valueOf(samples, 'ws_gateway_dropped_messages_total', labels), gateway.app.wsGateway.stats().dropped)
  t.equal(valueOf(samples, 'ws_gateway_closes_total', { ...labels, side: 'client', code: '4xxx' }), 2, '4321 from the client, 4000 from the API')
})

t.test('metrics: true uses the default registry; route adds a scrape endpoint; two paths share the series', async (t) => {
  const backend = await startBackend(t)
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(wsGateway, { path: '/one', backends: { [BACKEND_ID]: backend.url }, jwt: { secret: SECRET }, metrics: true })
  await app.register(wsGateway, { path: '/two', backends: { [BACKEND_ID]: backend.url }, jwt: { secret: SECRET }, metrics: { route: '/metrics' } })
  await app.ready()
  const res = await app.inject('/metrics')
  t.equal(res.statusCode, 200)
  t.match(res.headers['content-type'], /^text\/plain; version=0\.0\.4/)
  const samples = parseMetrics(res.body)
  t.equal(valueOf(samples, 'ws_gateway_endpoints', { path: '/one', backend: BACKEND_ID, state: 'healthy' }), 1)
  t.equal(valueOf(samples, 'ws_gateway_endpoints', { path: '/two', backend: BACKEND_ID, state: 'healthy' }), 1)
  t.same(parseMetrics(await defaultRegistry.metrics()), samples, 'the route answers the default registry')
  await app.close()
  t.equal(valueOf(parseMetrics(await defaultRegistry.metrics()), 'ws_gateway_endpoints', { path: '/one', backend: BACKEND_ID, state: 'healthy' }), 0,
    'a closed app takes its series away')
})

t.test('the exposition parser refuses what is not a sample line', async (t) => {
  t.throws(() => parseMetrics('not a metric line at all'), /not a sample line/)
  t.same(parseMetrics('# HELP x y\nx{a="q\\"uote",b="n\\nl"} 2 1700000000\n'), [{ name: 'x', labels: { a: 'q"uote', b: 'n\nl' }, value: 2 }])
  t.throws(() => valueOf([{ name: 'x', labels: { a: '1' }, value: 1 }, { name: 'x', labels: { a: '2' }, value: 1 }], 'x'), /2 samples of x/)
})

t.test('the Grafana dashboard in example/ asks only for series the gateway exports', async (t) => {
  const dashboard = JSON.parse(readFileSync(join(__dirname, '../example/grafana-dashboard.json'), 'utf8')) as {
    panels: Array<{ targets?: Array<{ expr: string }> }>
    templating: { list: Array<{ definition?: string }> }
  }
  const registry = new Registry()
  await startGateway(t, { backends: { [BACKEND_ID]: 'ws://127.0.0.1:1' }, jwt: { secret: SECRET }, metrics: { registry } })
  const queries = [...dashboard.panels.flatMap((panel) => (panel.targets ?? []).map((target) => target.expr)), ...dashboard.templating.list.map((v) => v.definition ?? '')]
  const names = new Set(queries.flatMap((query) => [...query.matchAll(/\bws_gateway_[a-z_]+/g)].map(([name]) => name.replace(/_bucket$/, ''))))
  t.equal(names.size, 16, 'every series is on the dashboard')
  for (const name of names) t.ok(registry.getSingleMetric(name), name)
})
