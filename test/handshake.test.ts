import { once } from 'node:events'
import net, { type AddressInfo } from 'node:net'
import http from 'node:http'
import t from 'tap'
import WebSocket from 'ws'
import fastifyWebsocket from '@fastify/websocket'
import { BACKEND_ID, authHeaders, closeOf, connect, deadPort, handshake, nextMessage, sign, startBackend, startGateway, startPair } from './helpers'

t.test('a plain GET on the route gets 426 with Upgrade: websocket', async (t) => {
  const { gateway } = await startPair(t)
  const res = await gateway.app.inject({ url: '/ws', headers: authHeaders() })
  t.equal(res.statusCode, 426)
  t.equal(res.headers.upgrade, 'websocket')
  t.equal(res.json().code, 'FST_WS_GATEWAY_UPGRADE_REQUIRED')
})

t.test('malformed handshakes are refused before any backend work', async (t) => {
  const { gateway, backend } = await startPair(t)
  const h2c = await handshake(gateway.port, { ...authHeaders(), upgrade: 'h2c' })
  t.equal(h2c.status, 400)
  t.equal(h2c.body.code, 'FST_WS_GATEWAY_BAD_HANDSHAKE')
  const badKey = await handshake(gateway.port, { ...authHeaders(), 'sec-websocket-key': 'short' })
  t.equal(badKey.status, 400)
  const v8 = await handshake(gateway.port, { ...authHeaders(), 'sec-websocket-version': '8' })
  t.equal(v8.status, 426, 'ws would accept version 8; the gateway speaks 13 only')
  t.equal(v8.headers['sec-websocket-version'], '13')
  t.equal(backend.sockets.length, 0, 'the backend was never contacted')
})

t.test('origin checks: a list, a predicate, and no Origin at all', async (t) => {
  const { gateway } = await startPair(t, { allowedOrigins: ['https://app.example.com'] })
  const refused = await handshake(gateway.port, { ...authHeaders(), origin: 'https://evil.example.com' })
  t.equal(refused.status, 403)
  t.equal(refused.body.code, 'FST_WS_GATEWAY_ORIGIN_FORBIDDEN')
  const allowed = await handshake(gateway.port, { ...authHeaders(), origin: 'https://APP.example.com' })
  t.equal(allowed.status, 101, 'origins compare case-insensitively')
  allowed.socket?.destroy()
  const noOrigin = await handshake(gateway.port, authHeaders())
  t.equal(noOrigin.status, 101, 'non-browser clients send no Origin')
  noOrigin.socket?.destroy()
  const { gateway: byPredicate } = await startPair(t, { allowedOrigins: (origin) => origin.endsWith('.trusted.test') })
  t.equal((await handshake(byPredicate.port, { ...authHeaders(), origin: 'https://a.untrusted.test' })).status, 403)
})

t.test('the ID header: missing 400, repeated 400, odd characters 400, unknown 404', async (t) => {
  const { gateway } = await startPair(t)
  const token = `Bearer ${sign()}`
  const missing = await handshake(gateway.port, { authorization: token })
  t.equal(missing.status, 400)
  t.equal(missing.body.code, 'FST_WS_GATEWAY_NO_BACKEND_ID')
  const repeated = await handshake(gateway.port, { authorization: token, id: [BACKEND_ID, BACKEND_ID] })
  t.equal(repeated.status, 400)
  t.equal(repeated.body.message, 'Invalid backend ID: the ID is repeated')
  for (const id of ['../etc', 'a b', 'x'.repeat(65), 'Backend_ABC?x=1', '']) {
    const res = await handshake(gateway.port, { authorization: token, id })
    t.equal(res.status, 400, JSON.stringify(id))
    t.equal(res.body.code, 'FST_WS_GATEWAY_BAD_BACKEND_ID')
  }
  for (const id of ['Backend_NOPE', 'constructor', '__proto__']) {
    const res = await handshake(gateway.port, { authorization: token, id })
    t.equal(res.status, 404, id)
    t.equal(res.body.code, 'FST_WS_GATEWAY_UNKNOWN_BACKEND')
  }
})

t.test('a custom idHeader is read case-insensitively', async (t) => {
  const { gateway } = await startPair(t, { idHeader: 'X-Backend' })
  const ws = await connect(gateway.url, { authorization: `Bearer ${sign()}`, 'x-backend': BACKEND_ID })
  ws.close()
})

t.test('resolveBackend: found, unknown, throwing and malformed', async (t) => {
  const backend = await startBackend(t)
  const gateway = await startGateway(t, {
    jwt: { secret: 'a-test-secret-that-is-long-enough-for-hs256' },
    resolveBackend: async (id) => {
      if (id === 'Found') return { url: backend.url }
      if (id === 'Throws') throw new Error('discovery down at 10.0.0.1')
      if (id === 'Malformed') return { url: 'http://nope' }
      return undefined
    }
  })
  const ws = await connect(gateway.url, authHeaders({ id: 'Found' }))
  ws.send('x')
  t.equal((await nextMessage(ws)).data.toString(), 'x')
  ws.close()
  t.equal((await handshake(gateway.port, authHeaders({ id: 'Missing' }))).status, 404)
  const throws = await handshake(gateway.port, authHeaders({ id: 'Throws' }))
  t.equal(throws.status, 502)
  t.notMatch(JSON.stringify(throws.body), /10\.0\.0\.1|discovery/)
  t.equal((await handshake(gateway.port, authHeaders({ id: 'Malformed' }))).status, 502)
})

t.test('authorize: false is 403, true connects, and it sees the claims', async (t) => {
  const { gateway } = await startPair(t, {
    authorize: async (request, id) => (request.user as { backends: string[] }).backends.includes(id)
  })
  const refused = await handshake(gateway.port, { id: BACKEND_ID, authorization: `Bearer ${sign({ backends: ['Other'] })}` })
  t.equal(refused.status, 403)
  t.equal(refused.body.code, 'FST_WS_GATEWAY_FORBIDDEN')
  const ws = await connect(gateway.url, { id: BACKEND_ID, authorization: `Bearer ${sign({ backends: [BACKEND_ID] })}` })
  ws.close()
})

t.test('the backend handshake carries the query, end-to-end headers and X-Forwarded-*', async (t) => {
  const backend = await startBackend(t)
  const gateway = await startGateway(t, {
    jwt: { secret: 'a-test-secret-that-is-long-enough-for-hs256' },
    backends: { [BACKEND_ID]: { url: `${backend.url}/inner?fixed=1`, headers: { 'x-backend-key': 'k1' } } },
    rewriteRequestHeaders: (request, headers) => ({ ...headers, 'x-user': String((request.user as { sub: string }).sub) })
  })
  const token = sign()
  const res = await handshake(gateway.port, {
    authorization: `Bearer ${token}`,
    id: BACKEND_ID,
    cookie: 'session=abc',
    'user-agent': 'test-agent',
    'x-custom': 'yes',
    'x-forwarded-for': '6.6.6.6',
    'x-forwarded-host': 'forged.example',
    forwarded: 'for=6.6.6.6',
    connection: 'Upgrade, x-hop',
    'x-hop': 'drop me',
    'keep-alive': 'timeout=5'
  }, '/ws?room=7&x=%20y')
  t.equal(res.status, 101)
  const req = backend.requests[0]
  t.equal(req.url, '/inner?fixed=1&room=7&x=%20y')
  t.equal(req.headers.authorization, `Bearer ${token}`)
  t.equal(req.headers.cookie, 'session=abc')
  t.equal(req.headers['user-agent'], 'test-agent')
  t.equal(req.headers['x-custom'], 'yes')
  t.equal(req.headers.id, BACKEND_ID)
  t.equal(req.headers['x-forwarded-for'], '127.0.0.1', 'client-sent X-Forwarded-For is overwritten')
  t.equal(req.headers['x-forwarded-proto'], 'http')
  t.equal(req.headers['x-forwarded-host'], `127.0.0.1:${gateway.port}`)
  t.equal(req.headers.forwarded, `for=127.0.0.1;host="127.0.0.1:${gateway.port}";proto=http`, 'client-sent Forwarded is replaced')
  t.equal(req.headers['x-hop'], undefined, 'headers named in Connection are hop-by-hop')
  t.equal(req.headers['keep-alive'], undefined)
  t.equal(req.headers['x-backend-key'], 'k1')
  t.equal(req.headers['x-user'], 'user-1')
  t.equal(req.headers['sec-websocket-extensions'], undefined, 'compression is not offered to the backend')
  t.equal(req.headers['sec-websocket-protocol'], undefined)
  res.socket?.destroy()
})

t.test('subprotocols: the backend chooses, and none means none', async (t) => {
  const { gateway, backend } = await startPair(t, {}, { handleProtocols: (protocols) => protocols.has('v2') ? 'v2' : false })
  const chosen = await connect(gateway.url, authHeaders(), ['v1', 'v2'])
  t.equal(chosen.protocol, 'v2')
  t.equal(backend.requests[0].headers['sec-websocket-protocol'], 'v1, v2')
  chosen.close()
  const none = await handshake(gateway.port, { ...authHeaders(), 'sec-websocket-protocol': 'v1' })
  t.equal(none.status, 101)
  t.equal(none.headers['sec-websocket-protocol'], undefined, 'the client gets no protocol, not its first offer')
  none.socket?.destroy()
})

t.test('a backend choosing a protocol the client never offered is a bad gateway', async (t) => {
  const { gateway } = await startPair(t, {}, { handleProtocols: () => 'rogue' })
  // ws as a backend only answers with a protocol when one was offered; offer one it will "replace".
  const res = await handshake(gateway.port, { ...authHeaders(), 'sec-websocket-protocol': 'v1' })
  t.equal(res.status, 502)
})

t.test('the app\'s other WebSocket routes keep ws\'s default protocol choice', async (t) => {
  const backend = await startBackend(t)
  const gateway = await startGateway(t, { backends: { [BACKEND_ID]: backend.url }, jwt: { secret: 'a-test-secret-that-is-long-enough-for-hs256' } }, {}, async (app) => {
    await app.register(fastifyWebsocket)
    app.get('/other', { websocket: true }, (socket) => { socket.close(1000) })
  })
  const ws = new WebSocket(`ws://127.0.0.1:${gateway.port}/other`, ['p1', 'p2'])
  await once(ws, 'open')
  t.equal(ws.protocol, 'p1')
  await closeOf(ws)
})

t.test('backend refusals: 4xx passed through, 5xx and others 502, never the address', async (t) => {
  for (const [status, expected] of [[401, 401], [403, 403], [404, 404], [500, 502], [503, 502], [302, 502]]) {
    const server = http.createServer((_req, res) => { res.writeHead(status, { location: '/x' }).end('backend says no') })
    server.on('upgrade', (_req, socket) => { socket.end(`HTTP/1.1 ${status} Nope\r\nlocation: /x\r\ncontent-length: 0\r\n\r\n`) })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    t.teardown(() => server.close())
    const url = `ws://127.0.0.1:${(server.address() as AddressInfo).port}`
    const gateway = await startGateway(t, { backends: { [BACKEND_ID]: url }, jwt: { secret: 'a-test-secret-that-is-long-enough-for-hs256' } })
    const res = await handshake(gateway.port, authHeaders())
    t.equal(res.status, expected, `backend ${status}`)
    t.equal(res.body.code, expected === 502 ? 'FST_WS_GATEWAY_BAD_GATEWAY' : 'FST_WS_GATEWAY_BACKEND_REFUSED')
    t.notMatch(JSON.stringify(res.body), /127\.0\.0\.1|backend says no/)
  }
})

t.test('an unreachable backend is 502 without its address', async (t) => {
  const port = await deadPort()
  const gateway = await startGateway(t, { backends: { [BACKEND_ID]: `ws://127.0.0.1:${port}` }, jwt: { secret: 'a-test-secret-that-is-long-enough-for-hs256' } })
  const res = await handshake(gateway.port, authHeaders())
  t.equal(res.status, 502)
  t.notMatch(JSON.stringify(res.body), /ECONNREFUSED|127\.0\.0\.1/)
})

t.test('a backend that never answers is 504 after connectTimeout', async (t) => {
  const silent = net.createServer(() => {}).listen(0, '127.0.0.1')
  await once(silent, 'listening')
  const held: net.Socket[] = []
  silent.on('connection', (s) => { held.push(s.resume()) })
  t.teardown(() => { for (const s of held) s.destroy(); silent.close() })
  const gateway = await startGateway(t, {
    backends: { [BACKEND_ID]: `ws://127.0.0.1:${(silent.address() as AddressInfo).port}` },
    jwt: { secret: 'a-test-secret-that-is-long-enough-for-hs256' },
    connectTimeout: 200
  })
  const res = await handshake(gateway.port, authHeaders())
  t.equal(res.status, 504)
  t.equal(res.body.code, 'FST_WS_GATEWAY_TIMEOUT')
  t.equal(held.length, 1)
  if (!held[0].destroyed) await once(held[0], 'close')
  t.pass('the backend socket was closed')
})

t.test('a client that leaves while the backend is connecting takes the backend socket with it', async (t) => {
  const held: net.Socket[] = []
  const silent = net.createServer((s) => { held.push(s.resume()) }).listen(0, '127.0.0.1')
  await once(silent, 'listening')
  t.teardown(() => { for (const s of held) s.destroy(); silent.close() })
  const gateway = await startGateway(t, {
    backends: { [BACKEND_ID]: `ws://127.0.0.1:${(silent.address() as AddressInfo).port}` },
    jwt: { secret: 'a-test-secret-that-is-long-enough-for-hs256' }
  })
  const ws = new WebSocket(gateway.url, { headers: authHeaders() })
  ws.on('error', () => {})
  const [backendSide] = await once(silent, 'connection') as [net.Socket]
  ws.terminate()
  await once(backendSide, 'close')
  t.equal(gateway.app.wsGateway.stats().rejected.FST_WS_GATEWAY_CLIENT_GONE, 1)
})

t.test('a later hook refusing the upgrade closes the backend connection already opened', async (t) => {
  const backend = await startBackend(t)
  const gateway = await startGateway(t, { backends: { [BACKEND_ID]: backend.url }, jwt: { secret: 'a-test-secret-that-is-long-enough-for-hs256' } }, {}, (app) => {
    app.addHook('preHandler', async (request, reply) => { if (request.headers['x-deny'] !== undefined) await reply.code(418).send({ no: true }) })
  })
  const res = await handshake(gateway.port, authHeaders({ 'x-deny': '1' }))
  t.equal(res.status, 418)
  const upstream = backend.sockets[0]
  if (upstream.readyState !== WebSocket.CLOSED) await once(upstream, 'close')
  t.equal(upstream.readyState, WebSocket.CLOSED)
})

t.test('an app\'s own handleProtocols still decides for its other WebSocket routes', async (t) => {
  const backend = await startBackend(t)
  const gateway = await startGateway(t, { backends: { [BACKEND_ID]: backend.url }, jwt: { secret: 'a-test-secret-that-is-long-enough-for-hs256' } }, {}, async (app) => {
    await app.register(fastifyWebsocket, { options: { handleProtocols: (protocols: Set<string>) => protocols.has('p2') ? 'p2' : false } })
    app.get('/other', { websocket: true }, (socket) => { socket.close(1000) })
  })
  const ws = new WebSocket(`ws://127.0.0.1:${gateway.port}/other`, ['p1', 'p2'])
  await once(ws, 'open')
  t.equal(ws.protocol, 'p2')
  await closeOf(ws)
})

t.test('a query parameter name that does not decode is forwarded as it came', async (t) => {
  const { gateway, backend } = await startPair(t, { idQuery: 'id' })
  const ws = await connect(`${gateway.url}?%E0%A4%A=1&id=${BACKEND_ID}`, { authorization: `Bearer ${sign()}` })
  t.equal(backend.requests[0].url, '/?%E0%A4%A=1')
  ws.close()
})

t.test('an authorize hook that throws is a logged 500 without its text', async (t) => {
  const { gateway, backend } = await startPair(t, { authorize: () => { throw new Error('db down') } })
  const res = await handshake(gateway.port, authHeaders())
  t.equal(res.status, 500)
  t.equal(res.body.code, 'FST_WS_GATEWAY_AUTHORIZE_FAILED')
  t.notMatch(JSON.stringify(res.body), /db down/)
  t.equal(backend.sockets.length, 0)
})

t.test('an error without a code from the app\'s own hooks is counted as INTERNAL', async (t) => {
  const backend = await startBackend(t)
  const gateway = await startGateway(t, { backends: { [BACKEND_ID]: backend.url }, jwt: { secret: 'a-test-secret-that-is-long-enough-for-hs256' } }, {}, (app) => {
    app.addHook('preHandler', async () => { throw new Error('app bug') })
  })
  const res = await handshake(gateway.port, authHeaders())
  t.equal(res.status, 500)
  t.equal(gateway.app.wsGateway.stats().rejected.INTERNAL, 1)
})
