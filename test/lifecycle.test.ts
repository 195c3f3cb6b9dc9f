import { once } from 'node:events'
import t from 'tap'
import WebSocket from 'ws'
import fastifyWebsocket from '@fastify/websocket'
import wsGateway from '../lib/index'
import { BACKEND_ID, SECRET, authHeaders, captureLogs, sign, closeOf, connect, handshake, nextMessage, startBackend, startGateway, startPair } from './helpers'

for (const engine of ['passthrough', 'ws'] as const) {
  t.test(`${engine} engine: fastify.close() closes both legs 1001 after delivering every message already sent`, async (t) => {
    let received = 0
    const { gateway, backend } = await startPair(t, { engine }, {
      onConnection: (ws) => ws.on('message', () => { received++ })
    })
    const ws = await connect(gateway.url)
    const backendClosed = closeOf(backend.sockets[0])
    const clientClosed = closeOf(ws)
    for (let i = 0; i < 1000; i++) ws.send(`message ${i}`)
    await gateway.app.close()
    t.same(await clientClosed, { code: 1001, reason: 'server shutting down' })
    t.same(await backendClosed, { code: 1001, reason: 'server shutting down' })
    t.equal(received, 1000, 'every message the client sent reached the backend')
  })
}

t.test('upgrades arriving during shutdown get 503; a client that ignores the close is terminated', async (t) => {
  const { gateway } = await startPair(t, { closeTimeout: 400 })
  // A raw client that never answers the gateway's close frame keeps the shutdown waiting.
  const stuck = await handshake(gateway.port, authHeaders())
  t.equal(stuck.status, 101)
  const stuckSocket = stuck.socket as NonNullable<typeof stuck.socket>
  stuckSocket.resume()
  const ended = once(stuckSocket, 'close')
  const closing = gateway.app.close()
  await new Promise((resolve) => setTimeout(resolve, 50))
  const late = await handshake(gateway.port, authHeaders())
  t.equal(late.status, 503)
  await closing
  await ended
  t.pass('the stuck client was terminated after closeTimeout')
})

t.test('an app that registered @fastify/websocket itself still gets 1001 on close', async (t) => {
  const backend = await startBackend(t)
  const gateway = await startGateway(t, { backends: { [BACKEND_ID]: backend.url }, jwt: { secret: SECRET } }, {}, async (app) => {
    await app.register(fastifyWebsocket)
  })
  const ws = await connect(gateway.url)
  const clientClosed = closeOf(ws)
  await gateway.app.close()
  t.equal((await clientClosed).code, 1001)
})

t.test('an upgrade whose backend connects after shutdown began is refused, and its backend closed', async (t) => {
  let release: () => void = () => {}
  const gate = new Promise<void>((resolve) => { release = resolve })
  const backend = await startBackend(t)
  const gateway = await startGateway(t, {
    jwt: { secret: SECRET },
    resolveBackend: async () => { await gate; return backend.url }
  })
  const ws = new WebSocket(gateway.url, { headers: authHeaders(), perMessageDeflate: false })
  ws.on('error', () => {})
  await new Promise((resolve) => setTimeout(resolve, 50))
  const closing = gateway.app.close()
  release()
  const [, res] = await once(ws, 'unexpected-response') as [unknown, { statusCode: number }]
  t.equal(res.statusCode, 503)
  await closing
  for (const socket of backend.sockets) if (socket.readyState !== WebSocket.CLOSED) await once(socket, 'close')
  t.pass('no backend connection outlives the refused upgrade')
})

t.test('ws engine: a client that ignores the close is terminated after closeTimeout', async (t) => {
  const { gateway } = await startPair(t, { engine: 'ws', drainTimeout: 0, closeTimeout: 200 })
  const stuck = await handshake(gateway.port, authHeaders())
  const socket = stuck.socket as NonNullable<typeof stuck.socket>
  socket.resume()
  const ended = once(socket, 'close')
  await gateway.app.close()
  await ended
  t.pass('terminated')
})

t.test('REST routes keep answering beside the gateway', async (t) => {
  const backend = await startBackend(t)
  const gateway = await startGateway(t, { backends: { [BACKEND_ID]: backend.url }, jwt: { secret: SECRET } }, {}, (app) => {
    app.get('/health', async () => ({ ok: true }))
  })
  const ws = await connect(gateway.url)
  const res = await fetch(`http://127.0.0.1:${gateway.port}/health`)
  t.same(await res.json(), { ok: true })
  ws.send('still relaying')
  t.equal((await nextMessage(ws)).data.toString(), 'still relaying')
  ws.close()
})

t.test('two gateways in one app, under different paths with different backends', async (t) => {
  const abc = await startBackend(t, { onConnection: (ws) => ws.on('message', (m) => ws.send(`[ABC] ${m.toString()}`)) })
  const xyz = await startBackend(t, { onConnection: (ws) => ws.on('message', (m) => ws.send(`[XYZ] ${m.toString()}`)) })
  const gateway = await startGateway(t, { path: '/one', backends: { Backend_ABC: abc.url }, jwt: { secret: SECRET } }, {}, async (app) => {
    await app.register(wsGateway, { path: '/two', backends: { Backend_XYZ: xyz.url }, jwt: { secret: 'second-secret' }, engine: 'ws' })
  })
  const base = `ws://127.0.0.1:${gateway.port}`
  const one = await connect(`${base}/one`, authHeaders({ id: 'Backend_ABC' }))
  one.send('hi')
  t.equal((await nextMessage(one)).data.toString(), '[ABC] hi')
  const refused = await handshake(gateway.port, authHeaders({ id: 'Backend_ABC' }), '/two')
  t.equal(refused.status, 401, 'the second gateway has its own secret')
  const two = await connect(`${base}/two`, { authorization: `Bearer ${sign({}, { key: 'second-secret' })}`, id: 'Backend_XYZ' })
  two.send('hi')
  t.equal((await nextMessage(two)).data.toString(), '[XYZ] hi')
  const unknown = await handshake(gateway.port, authHeaders({ id: 'Backend_XYZ' }), '/one')
  t.equal(unknown.status, 404, 'each gateway knows only its own backends')
  const stats = gateway.app.wsGateway.stats()
  t.equal(stats.open, 2)
  t.equal(stats.byPath['/one'].open, 1)
  t.equal(stats.byPath['/two'].open, 1)
  t.same(stats.byPath['/two'].rejected, { FST_WS_GATEWAY_INVALID_TOKEN: 1 })
  t.same(stats.rejected, { FST_WS_GATEWAY_INVALID_TOKEN: 1, FST_WS_GATEWAY_UNKNOWN_BACKEND: 1 })
  t.same(stats.byPath['/two'].engines, { passthrough: 0, ws: 1 }, 'connections counted by the engine that relays them')
  t.same(stats.engines, { passthrough: 1, ws: 1 })
  one.close()
  two.close()
})

t.test('stats count connections, frames and bytes each way, open and closed', async (t) => {
  const { gateway, backend } = await startPair(t)
  const ws = await connect(gateway.url)
  ws.send('abc')
  await nextMessage(ws)
  ws.send(Buffer.alloc(10), { binary: true })
  await nextMessage(ws)
  let stats = gateway.app.wsGateway.stats()
  t.equal(stats.open, 1)
  t.same(stats.fromClient, { frames: 2, bytes: 13 })
  t.same(stats.fromBackend, { frames: 2, bytes: 13 })
  const backendClosed = closeOf(backend.sockets[0])
  ws.close()
  await backendClosed
  await new Promise((resolve) => setTimeout(resolve, 20))
  stats = gateway.app.wsGateway.stats()
  t.equal(stats.open, 0)
  t.equal(stats.total, 1)
  t.same(stats.fromClient, { frames: 2, bytes: 13 }, 'closed connections still count')
})

t.test('one log line at open and one at close, with the connection\'s figures and no token', async (t) => {
  const { lines, logger } = captureLogs()
  const backend = await startBackend(t)
  const gateway = await startGateway(t, { backends: { [BACKEND_ID]: backend.url }, jwt: { secret: SECRET } }, { logger })
  const headers = authHeaders()
  const ws = await connect(gateway.url, headers)
  ws.send('12345')
  await nextMessage(ws)
  const backendClosed = closeOf(backend.sockets[0])
  ws.close(4000, 'done')
  await backendClosed
  await new Promise((resolve) => setTimeout(resolve, 20))
  const open = lines.filter((l) => l.msg === 'ws gateway connection open')
  const closed = lines.filter((l) => l.msg === 'ws gateway connection closed')
  t.equal(open.length, 1)
  t.equal(closed.length, 1)
  t.match(open[0], { backendId: BACKEND_ID, sub: 'user-1', engine: 'passthrough' })
  t.match(closed[0], {
    backendId: BACKEND_ID,
    sub: 'user-1',
    clientCode: 4000,
    backendCode: 4000,
    fromClient: { frames: 1, bytes: 5 },
    fromBackend: { frames: 1, bytes: 5 }
  })
  t.type(closed[0].durationMs, 'number')
  t.notMatch(JSON.stringify(lines), headers.authorization.slice(7), 'the token is never logged')
})

t.test('the package exports the plugin the Fastify way', async (t) => {
  const required = require('../lib/index')
  t.type(required, 'function')
  t.equal(required.default, required)
  t.equal(required.wsGateway, required)
  t.equal(required.errors.NoTokenError().code, 'FST_WS_GATEWAY_NO_TOKEN')
  t.equal(required.CloseCode.BAD_GATEWAY, 1014)
})
