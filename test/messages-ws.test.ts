import { once } from 'node:events'
import t from 'tap'
import type { AddressInfo } from 'node:net'
import Fastify from 'fastify'
import wsGateway from '../lib/index'
import { SECRET, ask, closeOf, connect, frames, nextFrame, sign, startBackend, startGateway, startHttpBackend, startMessageGateway, tokenHeaders } from './helpers'

/*
 * Message mode's WebSocket routes, the connect/disconnect hooks, `authorize`, route() and stats,
 * over real sockets.
 */

t.test('a ws route: one upstream per connection, opened on first use, messages both ways, closed with the client', async (t) => {
  const prices = await startBackend(t, {
    onConnection: (ws) => {
      ws.send('{"tick":1}')
      ws.on('message', (data) => {
        ws.send(`got ${data.toString()}`)
        ws.send(Buffer.from([0, 1, 2]), { binary: true })
      })
    }
  })
  const gateway = await startMessageGateway(t, { routes: { 'prices.watch': { ws: { url: prices.url, headers: { 'x-feed': 'eu' } } } } })
  const ws = await connect(gateway.url, tokenHeaders({ sub: 'carol' }))
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal(prices.sockets.length, 0, 'nothing is opened before the first message')
  const got = frames(ws, 3)
  ws.send('{"action":"prices.watch","symbol":"ACME"}')
  t.same(await got, [
    { type: 'message', route: 'prices.watch', data: { tick: 1 } },
    { type: 'message', route: 'prices.watch', data: 'got {"action":"prices.watch","symbol":"ACME"}' },
    { type: 'message', route: 'prices.watch', data: 'AAEC' }
  ])
  const more = frames(ws, 2)
  ws.send('{"action":"prices.watch","symbol":"MEGA"}')
  await more
  t.equal(prices.sockets.length, 1, 'one upstream for the connection and route')
  const [req] = prices.requests
  t.equal(req.headers['x-user-sub'], 'carol')
  t.equal(req.headers['x-route-key'], 'prices.watch')
  t.equal(req.headers['x-feed'], 'eu')
  t.match(req.headers['x-connection-id'], /\./)
  const upstreamClosed = once(prices.sockets[0], 'close')
  ws.close(4000, 'done')
  const [code, reason] = await upstreamClosed
  t.equal(code, 4000, 'the upstream closes with the client')
  t.equal(reason.toString(), 'done')
  t.match(gateway.app.wsGateway.stats().messages, { pushed: 5, requests: 2, replies: 0 })
})

t.test('a ws upstream that fails: BAD_GATEWAY for the route, the client stays, the next message reopens it', async (t) => {
  let refuse = true
  const upstream = await startBackend(t, {
    verifyClient: (_info, done) => { if (refuse) done(false, 503); else done(true) },
    onConnection: (ws) => ws.on('message', () => ws.send('"ok"'))
  })
  const gateway = await startMessageGateway(t, { routes: { feed: { ws: upstream.url }, dead: { ws: 'ws://127.0.0.1:1' } } })
  const ws = await connect(gateway.url, tokenHeaders())
  const badGateway = { type: 'error', route: 'feed', code: 'FST_WS_GATEWAY_BAD_GATEWAY', status: 502, message: 'The backend could not be reached' }
  t.same(await ask(ws, { action: 'feed', id: 'a' }), { ...badGateway, id: 'a' }, 'a refused handshake')
  t.same(await ask(ws, { action: 'dead', id: 'b' }), { ...badGateway, id: 'b', route: 'dead' }, 'an unreachable upstream')
  refuse = false
  t.same(await ask(ws, { action: 'feed' }), { type: 'message', route: 'feed', data: 'ok' })
  upstream.sockets[0].terminate()
  t.same(await nextFrame(ws), { ...badGateway, id: null }, 'an upstream dying after it opened')
  t.same(await ask(ws, { action: 'feed' }), { type: 'message', route: 'feed', data: 'ok' }, 'reopened on next use')
  t.equal(upstream.sockets.length, 2)
  t.equal(ws.readyState, ws.OPEN)
  ws.close()
})

t.test('a ws upstream slow to open: TIMEOUT, and the half-open upstream is dropped', async (t) => {
  const pending: Array<() => void> = []
  const upstream = await startBackend(t, { verifyClient: (_info, done) => { pending.push(() => done(true)) } })
  // A heartbeat while the upstream opens leaves it alone.
  const gateway = await startMessageGateway(t, { routes: { slow: { ws: upstream.url, timeout: 1500 } } }, { heartbeatInterval: 1000 })
  const ws = await connect(gateway.url, tokenHeaders())
  t.match(await ask(ws, { action: 'slow', id: 1 }), { code: 'FST_WS_GATEWAY_TIMEOUT', status: 504, id: 1 })
  ws.close()
  for (const accept of pending) accept()
})

t.test('a client that stops reading pauses its upstreams, and is closed as a slow consumer', async (t) => {
  const upstream = await startBackend(t, {
    onConnection: (ws) => ws.on('message', () => {
      const chunk = JSON.stringify('y'.repeat(64 * 1024))
      const pump = (): void => { while (ws.readyState === ws.OPEN && ws.bufferedAmount < 1024 * 1024) ws.send(chunk) }
      pump()
      const timer = setInterval(pump, 10)
      ws.on('close', () => clearInterval(timer))
    })
  })
  const gateway = await startMessageGateway(t, { routes: { flood: { ws: upstream.url } } }, { highWaterMark: 256 * 1024, slowConsumerTimeout: 1000 })
  const ws = await connect(gateway.url, tokenHeaders())
  const first = once(ws, 'message')
  ws.send('{"action":"flood"}')
  await first
  ws.pause()
  const closed = once(ws, 'close')
  await new Promise((resolve) => setTimeout(resolve, 2000))
  ws.resume()
  const [code, reason] = await closed
  t.equal(code, 1008)
  t.equal(reason.toString(), 'slow consumer')
})

t.test('connect hook: 2xx upgrades with the identity, 4xx passes its status, else 502, slow 504; disconnect is sent after close', async (t) => {
  const seenDisconnect: Array<Record<string, unknown>> = []
  const hooks = await startHttpBackend(t, (seen, res) => {
    const body = JSON.parse(seen.body)
    if (seen.url === '/disconnect') {
      seenDisconnect.push(body)
      return res.writeHead(204).end()
    }
    const verdicts: Record<string, () => void> = {
      ok: () => res.writeHead(204).end(),
      banned: () => res.writeHead(403).end(),
      broken: () => res.writeHead(500).end(),
      slow: () => {}
    }
    verdicts[body.sub]()
  })
  const gateway = await startMessageGateway(t, {
    connect: { http: { url: `${hooks.url}/connect`, timeout: 1500 } },
    disconnect: { http: `${hooks.url}/disconnect` },
    routes: {}
  })
  const ws = await connect(gateway.url, tokenHeaders({ sub: 'ok', role: 'admin' }))
  const [connectSeen] = hooks.requests
  const connectBody = JSON.parse(connectSeen.body)
  t.match(connectBody, { sub: 'ok', user: { sub: 'ok', role: 'admin' }, ip: '127.0.0.1' })
  t.equal(connectSeen.headers['x-connection-id'], connectBody.connectionId)
  t.equal(connectSeen.headers['x-route-key'], '$connect')
  await t.rejects(connect(gateway.url, tokenHeaders({ sub: 'banned' })), /status 403/)
  await t.rejects(connect(gateway.url, tokenHeaders({ sub: 'broken' })), /status 502/)
  await t.rejects(connect(gateway.url, tokenHeaders({ sub: 'slow' })), /status 504/)
  ws.close(1000)
  await closeOf(ws)
  while (seenDisconnect.length === 0) await new Promise((resolve) => setTimeout(resolve, 10))
  t.match(seenDisconnect, [{ connectionId: connectBody.connectionId, sub: 'ok', code: 1000 }])
  t.match(gateway.app.wsGateway.stats().rejected, { FST_WS_GATEWAY_BACKEND_REFUSED: 1, FST_WS_GATEWAY_BAD_GATEWAY: 1, FST_WS_GATEWAY_TIMEOUT: 1 })
})

t.test('a disconnect hook that fails is logged, once; an unreachable connect hook is a 502', async (t) => {
  const lines: Array<Record<string, unknown>> = []
  const hooks = await startHttpBackend(t, (_seen, res) => res.writeHead(500).end())
  const gateway = await startMessageGateway(t, { disconnect: { http: hooks.url }, routes: {} }, {}, { logger: { level: 'warn', stream: { write: (line: string) => { lines.push(JSON.parse(line)) } } } })
  const ws = await connect(gateway.url, tokenHeaders({ sub: undefined }))
  ws.close()
  while (!lines.some((line) => line.msg === 'ws gateway disconnect hook failed')) await new Promise((resolve) => setTimeout(resolve, 10))
  t.match(lines, [{ msg: 'ws gateway disconnect hook failed', status: 500 }])
  const unreachable = await startMessageGateway(t, { connect: { http: 'http://127.0.0.1:1' }, disconnect: { http: 'http://127.0.0.1:1' }, routes: {} })
  await t.rejects(connect(unreachable.url, tokenHeaders()), /status 502/)
})

t.test('authorize runs once at the handshake with "$connect"; no id header is needed', async (t) => {
  const asked: string[] = []
  const gateway = await startMessageGateway(t, { routes: {} }, { authorize: (request, id) => { asked.push(id); return (request.user as { sub: string }).sub !== 'eve' } })
  const ws = await connect(gateway.url, tokenHeaders())
  await t.rejects(connect(gateway.url, tokenHeaders({ sub: 'eve' })), /status 403/)
  t.same(asked, ['$connect', '$connect'])
  await t.rejects(connect(gateway.url, {}), /status 401/, 'the token is still required')
  ws.close()
})

t.test('a browser token in the subprotocol list selects the marker; relay and message mode live side by side', async (t) => {
  const echo = await startBackend(t)
  const backend = await startHttpBackend(t)
  const gateway = await startMessageGateway(t, { routes: { $default: { http: backend.url } } }, {}, {}, async (app) => {
    await app.register(wsGateway, { path: '/relay', backends: { echo: echo.url }, jwt: { secret: 'another-secret-that-is-long-enough-ok' }, heartbeatInterval: 0 })
  })
  const ws = await connect(gateway.url, {}, ['bearer', sign()])
  t.equal(ws.protocol, 'bearer')
  t.equal((await ask(ws, { action: 'x' })).type, 'reply')
  ws.close()
  const relay = await connect(`ws://127.0.0.1:${gateway.port}/relay`, { authorization: `Bearer ${sign({}, { key: 'another-secret-that-is-long-enough-ok' })}`, id: 'echo' })
  relay.send('plain frame')
  t.equal((await once(relay, 'message'))[0].toString(), 'plain frame')
  relay.close()
  const stats = gateway.app.wsGateway.stats()
  t.ok(stats.byPath['/api'].messages !== undefined && stats.byPath['/relay'].messages === undefined)
})

t.test('fastify.wsGateway.route() adds routes before ready, and refuses duplicates, bad ones and late ones', async (t) => {
  const backend = await startHttpBackend(t)
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(wsGateway, { path: '/api', jwt: { secret: SECRET }, messages: { routes: { a: { http: backend.url } } } })
  app.wsGateway.route('b', { http: `${backend.url}/b` })
  t.throws(() => app.wsGateway.route('a', { http: backend.url }), { code: 'FST_WS_GATEWAY_INVALID_OPTION', message: /messages\.routes\["a"\] exists already/ })
  t.throws(() => app.wsGateway.route('c', { http: 'ftp://x' }), { message: /messages\.routes\["c"\]\.http\.url must be a http: or https: URL/ })
  t.throws(() => app.wsGateway.route('d', { http: backend.url }, '/nowhere'), { message: /no message-mode gateway at path "\/nowhere"/ })
  await app.register(wsGateway, { path: '/api2', jwt: { secret: SECRET }, messages: { routes: {} } })
  t.throws(() => app.wsGateway.route('e', { http: backend.url }), { message: /several gateways are in message mode: give the path/ })
  app.wsGateway.route('e', { http: backend.url }, '/api2')
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.throws(() => app.wsGateway.route('late', { http: backend.url }, '/api'), { message: /before the app is ready/ })
  const ws = await connect(`ws://127.0.0.1:${(app.server.address() as AddressInfo).port}/api`, tokenHeaders())
  t.equal((await ask(ws, { action: 'b' })).type, 'reply')
  t.equal(backend.requests[0].url, '/b')
  ws.close()
})

t.test('a queue route needs the cluster option on the app\'s first registration', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await t.rejects(async () => { await app.register(wsGateway, { path: '/api', jwt: { secret: SECRET }, messages: { routes: { q: { queue: { stream: 's' } } } } }) }, {
    code: 'FST_WS_GATEWAY_INVALID_OPTION', message: /messages\.routes\["q"\]\.queue needs the cluster option/
  })
})

t.test('route() needs a gateway in message mode', async (t) => {
  const echo = await startBackend(t)
  const gateway = await startGateway(t, { backends: { echo: echo.url }, jwt: { secret: SECRET }, heartbeatInterval: 0 })
  t.throws(() => gateway.app.wsGateway.route('x', { http: 'http://127.0.0.1:1' }), { message: /no gateway is in message mode/ })
})
