import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import fastifyJwt from '@fastify/jwt'
import fastifyWebsocket from '@fastify/websocket'
import type { WebSocket as ServerSocket } from 'ws'
import wsGateway, { type WsGatewayOptions } from '../lib/index'
import { BACKEND_ID, SECRET, authHeaders, captureLogs, closeOf, connect, nextMessage, sign, startBackend, type LogLine, type TestLike } from './helpers'

/*
 * The gateway inside an app that has WebSocket routes and @fastify/jwt of its own: whatever the
 * order or the placement, both keep working, with real clients over real sockets.
 */

/** An app route echoing every message, the way an app writes one with @fastify/websocket. */
function echoRoute (app: FastifyInstance, path = '/echo'): void {
  app.get(path, { websocket: true }, (socket: ServerSocket) => {
    socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary }))
  })
}

/** The app, listening on 127.0.0.1, with what `build` registered; closed at teardown. */
async function listen (t: TestLike, build: (app: FastifyInstance) => Promise<void>): Promise<{ app: FastifyInstance, base: string, lines: LogLine[] }> {
  const { lines, logger } = captureLogs()
  const app = Fastify({ logger })
  t.teardown(() => app.close())
  await build(app)
  const address = await app.listen({ host: '127.0.0.1', port: 0 })
  return { app, base: address.replace('http', 'ws'), lines }
}

/** Sends `data` on a new connection to `url` and resolves with what comes back. */
async function echo (url: string, data: string | Buffer, headers?: Record<string, string>): Promise<Buffer> {
  const ws = await connect(url, headers)
  ws.send(data)
  const { data: answer } = await nextMessage(ws)
  ws.close()
  return answer
}

/** Log lines of an upgrade routed twice (Node's ERR_HTTP_SOCKET_ASSIGNED, logged by @fastify/websocket). */
function doubleRouted (lines: LogLine[]): LogLine[] {
  return lines.filter((l) => l.msg === 'websocket upgrade failed')
}

const gatewayOptions = (backendUrl: string, extra: Partial<WsGatewayOptions> = {}): WsGatewayOptions =>
  ({ backends: { [BACKEND_ID]: backendUrl }, jwt: { secret: SECRET }, heartbeatInterval: 0, ...extra })

for (const order of ['before', 'after'] as const) {
  t.test(`the app registers @fastify/websocket ${order} the gateway: both routes work, each with its own maxPayload`, async (t) => {
    const backend = await startBackend(t)
    const { base, lines } = await listen(t, async (app) => {
      if (order === 'before') await app.register(fastifyWebsocket)
      await app.register(wsGateway, gatewayOptions(backend.url, { maxPayload: 1024 }))
      if (order === 'after') await app.register(fastifyWebsocket)
      echoRoute(app)
    })
    const big = Buffer.alloc(64 * 1024, 1)
    t.equal((await echo(`${base}/echo`, big)).length, big.length, 'the app\'s route keeps the app\'s limit (ws\'s 100 MiB)')
    t.equal((await echo(`${base}/ws`, Buffer.alloc(1024))).length, 1024, 'the gateway takes its maxPayload')
    const ws = await connect(`${base}/ws`)
    const backendClosed = closeOf(backend.sockets[1])
    ws.send(Buffer.alloc(1025))
    t.same(await closeOf(ws), { code: 1009, reason: 'message too big' }, 'and not a byte more, though the shared server would allow it')
    t.equal((await backendClosed).code, 1001)
    t.same(doubleRouted(lines), [], 'every upgrade is routed once')
  })
}

for (const engine of ['passthrough', 'ws'] as const) {
  t.test(`${engine} engine: the gateway's maxPayload holds on its connections, above and below the app's server's`, async (t) => {
    const backend = await startBackend(t)
    const { base } = await listen(t, async (app) => {
      await app.register(fastifyWebsocket, { options: { maxPayload: 100 } })
      await app.register(wsGateway, gatewayOptions(backend.url, { engine, maxPayload: 4096 }))
      echoRoute(app)
    })
    t.equal((await echo(`${base}/ws`, Buffer.alloc(4096))).length, 4096, 'above the app\'s 100 bytes')
    const ws = await connect(`${base}/ws`)
    ws.send(Buffer.alloc(4097))
    t.same(await closeOf(ws), { code: 1009, reason: 'message too big' }, 'the gateway\'s own limit')
    const app = await connect(`${base}/echo`)
    app.send(Buffer.alloc(101))
    t.equal((await closeOf(app)).code, 1009, 'the app\'s route keeps the app\'s 100 bytes')
  })
}

t.test('two gateways in two prefixed plugins, and the app\'s own WebSocket route: one upgrade router, all served', async (t) => {
  const abc = await startBackend(t)
  const pqr = await startBackend(t, { onConnection: (ws) => ws.on('message', (data) => ws.send(`[PQR] ${String(data)}`)) })
  const { app, base, lines } = await listen(t, async (app) => {
    await app.register(async (child) => { await child.register(wsGateway, gatewayOptions(abc.url)) }, { prefix: '/a' })
    await app.register(async (child) => { await child.register(wsGateway, gatewayOptions(pqr.url)) }, { prefix: '/b' })
    await app.register(async (child) => {
      await child.register(fastifyWebsocket)
      echoRoute(child)
    }, { prefix: '/app' })
  })
  t.equal((await echo(`${base}/a/ws`, 'one')).toString(), 'one')
  t.equal((await echo(`${base}/b/ws`, 'two')).toString(), '[PQR] two')
  t.equal((await echo(`${base}/app/echo`, 'three')).toString(), 'three')
  t.same(doubleRouted(lines), [], 'no upgrade routed twice (ERR_HTTP_SOCKET_ASSIGNED)')
  t.equal(app.server.listenerCount('upgrade'), 1, 'one listener routes the upgrades of the whole app')
})

t.test('two gateways and no WebSocket routes of the app\'s: the gateway routes upgrades itself, and closes those no route takes', async (t) => {
  const backend = await startBackend(t)
  const { app, base, lines } = await listen(t, async (app) => {
    await app.register(async (child) => { await child.register(wsGateway, gatewayOptions(backend.url)) }, { prefix: '/a' })
    await app.register(async (child) => { await child.register(wsGateway, gatewayOptions(backend.url)) }, { prefix: '/b' })
    app.get('/health', async () => 'ok')
  })
  t.equal((await echo(`${base}/a/ws`, 'a')).toString(), 'a')
  t.equal((await echo(`${base}/b/ws`, 'b')).toString(), 'b')
  t.same(doubleRouted(lines), [])
  for (const path of ['/health', '/nowhere']) {
    const refused = await connect(`${base}${path}`).catch((err: Error) => err.message)
    t.equal(refused, path === '/health' ? 'status 200' : 'status 404', `an upgrade to ${path} gets the route's answer`)
  }
  t.equal(app.server.listenerCount('upgrade'), 1)
})

t.test('an app whose @fastify/websocket runs without client tracking, shared by two gateways', async (t) => {
  const backend = await startBackend(t)
  const { base } = await listen(t, async (app) => {
    await app.register(fastifyWebsocket, { options: { clientTracking: false } })
    await app.register(wsGateway, gatewayOptions(backend.url))
    await app.register(wsGateway, gatewayOptions(backend.url, { path: '/ws2' }))
  })
  for (const path of ['/ws', '/ws2']) {
    const ws = await connect(`${base}${path}`)
    ws.send('tracked or not')
    t.equal((await nextMessage(ws)).data.toString(), 'tracked or not', path)
    const backendClosed = closeOf(backend.sockets[backend.sockets.length - 1])
    ws.close(4001, 'bye')
    t.same(await backendClosed, { code: 4001, reason: 'bye' }, 'the relay owns the connection (was 101, then 1006)')
  }
})

t.test('the gateway\'s verifier stays its own: the app\'s fastify.jwt is untouched, gateways in sibling contexts coexist', async (t) => {
  const abc = await startBackend(t)
  const pqr = await startBackend(t)
  let appJwtKeys: string[] = []
  const { app, base } = await listen(t, async (app) => {
    await app.register(fastifyJwt, { secret: SECRET })
    const before = Object.keys(app.jwt)
    await app.register(async (child) => { await child.register(wsGateway, gatewayOptions(abc.url, { jwt: { secret: 'secret-of-a' } })) }, { prefix: '/a' })
    await app.register(async (child) => { await child.register(wsGateway, gatewayOptions(pqr.url, { jwt: { secret: 'secret-of-b' } })) }, { prefix: '/b' })
    await app.after()
    appJwtKeys = Object.keys(app.jwt).filter((key) => !before.includes(key))
    app.get('/me', async (request) => { await request.jwtVerify(); return request.user })
  })
  t.same(appJwtKeys, [], 'nothing is written onto the app\'s fastify.jwt')
  const as = (secret: string): Record<string, string> => authHeaders({ authorization: `Bearer ${sign({}, { key: secret })}` })
  t.equal((await echo(`${base}/a/ws`, 'a', as('secret-of-a'))).toString(), 'a')
  t.equal((await echo(`${base}/b/ws`, 'b', as('secret-of-b'))).toString(), 'b')
  await t.rejects(connect(`${base}/a/ws`, as('secret-of-b')), { message: 'status 401' }, 'each gateway verifies with its own secret')
  await t.rejects(connect(`${base}/b/ws`, as(SECRET)), { message: 'status 401' }, 'and not with the app\'s')
  const me = await app.inject({ url: '/me', headers: { authorization: `Bearer ${sign()}` } })
  t.equal(me.json().sub, 'user-1', 'the app\'s @fastify/jwt works as before')
})

for (const order of ['before', 'after'] as const) {
  t.test(`app.injectWS tests an app with the gateway against a real backend (@fastify/websocket ${order} the gateway)`, async (t) => {
    const backend = await startBackend(t)
    const app = Fastify()
    t.teardown(() => app.close())
    if (order === 'before') await app.register(fastifyWebsocket)
    await app.register(wsGateway, gatewayOptions(backend.url))
    if (order === 'after') await app.register(fastifyWebsocket)
    await app.ready()
    const ws = await app.injectWS('/ws', { headers: authHeaders() })
    ws.send('injected')
    t.equal((await nextMessage(ws)).data.toString(), 'injected', 'relayed through the real backend')
    t.equal(backend.requests[0].headers['x-forwarded-for'], undefined, 'an injected request has no address to forward')
    // The in-memory stream of injectWS never emits 'close', so a close handshake over it ends only at
    // ws's 30 s close timeout: a test ends the client with terminate(), which cuts the backend leg.
    const backendClosed = closeOf(backend.sockets[0])
    ws.terminate()
    t.equal((await backendClosed).code, 1006)
    await t.rejects(app.injectWS('/ws', { headers: { id: BACKEND_ID } }), { message: 'Unexpected server response: 401' }, 'a refusal is its HTTP status')
  })
}
