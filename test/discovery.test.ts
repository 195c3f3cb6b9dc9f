import t from 'tap'
import { Registry } from 'prom-client'
import { BACKEND_ID, SECRET, authHeaders, connect, deadPort, handshake, startGateway, until, type TestLike } from './helpers'
import { startDnsServer, type TestDnsServer } from './dns-server'
import { scrape, startReplicas, valueOf, whoAnswers, whoIs, type Replica } from './pool-helpers'

/** Replicas a, b … on 127.0.0.1, 127.0.0.2 … all on one port, as a headless Service's pods would be. */
async function replicasOnOnePort (t: TestLike, count: number): Promise<{ port: number, replicas: Replica[] }> {
  const port = await deadPort()
  return { port, replicas: await startReplicas(t, count, 0, (i) => ({ host: `127.0.0.${i + 1}`, port })) }
}

/** A gateway whose BACKEND_ID is discovered through `dns`, asking the test's DNS server. */
async function discovering (t: TestLike, dns: TestDnsServer, backend: Record<string, unknown>, interval = { minInterval: 20, maxInterval: 100 }): Promise<{ url: string, port: number, registry: Registry }> {
  const registry = new Registry()
  const { url, port } = await startGateway(t, {
    backends: { [BACKEND_ID]: backend as never },
    jwt: { secret: SECRET },
    heartbeatInterval: 0,
    dns: { servers: [dns.server], ...interval },
    metrics: { registry }
  })
  return { url, port, registry }
}

async function endpoints (registry: Registry, state: string): Promise<number> {
  return valueOf(await scrape(registry), 'ws_gateway_endpoints', { backend: BACKEND_ID, state })
}

t.test('A records: replicas appear and leave as the answers change; a removed one drains', async (t) => {
  const { port, replicas } = await replicasOnOnePort(t, 2)
  const dns = await startDnsServer(t, { 'backend.test': [{ type: 'A', address: '127.0.0.1', ttl: 0 }] })
  const gateway = await discovering(t, dns, { dns: `ws://backend.test:${port}` })
  t.same(await whoAnswers(gateway.url, 2), ['a', 'a'])
  t.equal(replicas[0].requests[0].headers.host, `backend.test:${port}`, 'the backend sees the DNS name as Host')

  dns.zone['backend.test'] = [{ type: 'A', address: '127.0.0.1', ttl: 0 }, { type: 'A', address: '127.0.0.2', ttl: 0 }]
  await until(async () => await endpoints(gateway.registry, 'healthy') === 2, 'the second address in the pool')
  t.same((await whoAnswers(gateway.url, 4)).sort(), ['a', 'a', 'b', 'b'], 'the new replica takes its turn')

  const held = await connect(gateway.url)
  const heldOn = await whoIs(held)
  dns.zone['backend.test'] = [{ type: 'A', address: heldOn === 'a' ? '127.0.0.2' : '127.0.0.1', ttl: 0 }]
  await until(async () => await endpoints(gateway.registry, 'draining') === 1, 'the removed replica draining')
  const other = heldOn === 'a' ? 'b' : 'a'
  t.same(await whoAnswers(gateway.url, 3), [other, other, other], 'a draining replica gets no new connection')
  t.equal(await whoIs(held), heldOn, 'its open connection runs on')
  held.close()
  await until(async () => await endpoints(gateway.registry, 'draining') === 0, 'the drained replica forgotten')
  t.pass('forgotten once its last connection ended')
})

t.test('AAAA records are endpoints too', async (t) => {
  const [a] = await startReplicas(t, 1, 0, () => ({ host: '::1', port: 0 }))
  const port = (a.wss.address() as { port: number }).port
  const dns = await startDnsServer(t, { 'six.test': [{ type: 'AAAA', address: '::1' }] })
  const gateway = await discovering(t, dns, { dns: `ws://six.test:${port}` })
  t.same(await whoAnswers(gateway.url, 1), ['a'])
})

t.test('SRV records: the lowest priority first, by weight within it, on the record\'s port', async (t) => {
  const replicas = await startReplicas(t, 3)
  const portOf = (replica: Replica): number => Number(new URL(replica.url).port)
  const dns = await startDnsServer(t, {
    '_ws._tcp.svc.test': [
      { type: 'SRV', target: 'a.svc.test', port: portOf(replicas[0]), priority: 10, weight: 3 },
      { type: 'SRV', target: 'b.svc.test', port: portOf(replicas[1]), priority: 10, weight: 1 },
      { type: 'SRV', target: 'c.svc.test', port: portOf(replicas[2]), priority: 20, weight: 1 },
      { type: 'SRV', target: 'c.svc.test', port: portOf(replicas[2]), priority: 10, weight: 0 }
    ],
    'a.svc.test': [{ type: 'A', address: '127.0.0.1' }],
    'b.svc.test': [{ type: 'A', address: '127.0.0.1' }],
    'c.svc.test': [{ type: 'A', address: '127.0.0.1' }]
  })
  const gateway = await discovering(t, dns, { dns: 'dns+srv://_ws._tcp.svc.test/' })
  const names = await whoAnswers(gateway.url, 8)
  t.same(names.filter((name) => name === 'a').length, 6, 'weight 3 of 4')
  t.same(names.filter((name) => name === 'b').length, 2, 'weight 1 of 4, and weight 0 next to nothing')
  replicas[0].refuseWith = 503
  replicas[1].refuseWith = 503
  t.same(await whoAnswers(gateway.url, 2), ['c', 'c'], 'priority 20 only when priority 10 cannot take the connection')

  dns.zone['_ws._tcp.svc.test'] = 'SERVFAIL'
  let asked = dns.queries.length
  await until(() => dns.queries.length >= asked + 2, 'two SRV queries answered SERVFAIL')
  t.same(await whoAnswers(gateway.url, 1), ['c'], 'SERVFAIL on the SRV name: the endpoints stay')
  dns.zone['_ws._tcp.svc.test'] = 'NXDOMAIN'
  asked = dns.queries.length
  await until(() => dns.queries.length >= asked + 2, 'two SRV queries answered NXDOMAIN')
  t.equal((await handshake(gateway.port, authHeaders())).status, 502, 'NXDOMAIN: no endpoint left')
})

t.test('re-resolution: at most maxInterval apart whatever the TTL; a failed one keeps the endpoints; NXDOMAIN empties the pool', async (t) => {
  const [a] = await startReplicas(t, 1)
  const port = new URL(a.url).port
  const dns = await startDnsServer(t, { 'long.test': [{ type: 'A', address: '127.0.0.1', ttl: 3600 }] })
  const gateway = await discovering(t, dns, { dns: `ws://long.test:${port}` }, { minInterval: 20, maxInterval: 60 })
  await until(() => dns.queries.filter((query) => query === 'A long.test').length >= 3, 'three resolutions of an hour-long TTL')
  t.pass('an hour-long TTL is re-resolved every maxInterval')

  dns.zone['long.test'] = 'SERVFAIL'
  const asked = dns.queries.length
  await until(() => dns.queries.length >= asked + 4, 'queries answered SERVFAIL')
  t.same(await whoAnswers(gateway.url, 1), ['a'], 'SERVFAIL: the known endpoint stays')
  dns.zone['long.test'] = 'DROP'
  await until(() => dns.queries.length >= asked + 8, 'queries left unanswered')
  t.same(await whoAnswers(gateway.url, 1), ['a'], 'no answer: the known endpoint stays')

  dns.zone['long.test'] = 'NXDOMAIN'
  await until(async () => await endpoints(gateway.registry, 'healthy') === 0, 'the pool emptied by NXDOMAIN')
  const res = await handshake(gateway.port, authHeaders())
  t.equal(res.status, 502, 'no endpoint: 502')
  t.equal(res.body.code, 'FST_WS_GATEWAY_BAD_GATEWAY')
})

t.test('the first connection waits for the first answer, within connectTimeout', async (t) => {
  const dns = await startDnsServer(t, { 'slow.test': 'DROP' })
  const gateway = await startGateway(t, {
    backends: { [BACKEND_ID]: { dns: 'ws://slow.test:1' } },
    jwt: { secret: SECRET },
    connectTimeout: 100,
    dns: { servers: [dns.server], timeout: 5000, tries: 1 }
  })
  const res = await handshake(gateway.port, authHeaders())
  t.equal(res.status, 504, 'DNS slower than connectTimeout: 504')
  t.equal(res.body.code, 'FST_WS_GATEWAY_TIMEOUT')
})

t.test('a deleted backend stops resolving, also when deleted while its query is under way', async (t) => {
  const dns = await startDnsServer(t, { 'gone.test': 'DROP' })
  const gateway = await startGateway(t, {
    backends: { [BACKEND_ID]: { dns: 'ws://gone.test:1' } },
    jwt: { secret: SECRET },
    dns: { servers: [dns.server], timeout: 200, tries: 1, minInterval: 20 }
  })
  await until(() => dns.queries.length >= 2, 'the first queries')
  gateway.app.wsGateway.deleteBackend(BACKEND_ID)
  const asked = dns.queries.length
  await new Promise((resolve) => setTimeout(resolve, 600))
  t.equal(dns.queries.length, asked, 'the unanswered query timed out and nothing followed')
})
