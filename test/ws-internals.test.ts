import { mkdtemp, readFile, rm } from 'node:fs/promises'
import net, { type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { buildSync } from 'esbuild'
import t from 'tap'
import WebSocket from 'ws'
import fastifyWebsocket from '@fastify/websocket'
import Fastify, { type FastifyPluginAsync } from 'fastify'
import type { WsGatewayOptions } from '../lib/index'
import { canAdopt, onFrameTooBig } from '../lib/relay/passthrough/ws-internals'
import { BACKEND_ID, SECRET, closeOf, connect, captureLogs, nextMessage, startBackend, startGateway } from './helpers'

// What the engines rely on of ws's private state (lib/relay/passthrough/ws-internals.ts): these
// tests fail when a ws release changes it, rather than letting the gateway fall back quietly.
// `test/ws-latest.test.ts` runs them against the newest ws 8.x as well.

t.test('a real pair is taken over by the passthrough engine; the engine is logged and counted', async (t) => {
  const backend = await startBackend(t)
  for (const engine of ['passthrough', 'ws'] as const) {
    const { lines, logger } = captureLogs()
    const gateway = await startGateway(t, { backends: { [BACKEND_ID]: backend.url }, jwt: { secret: SECRET }, engine }, { logger })
    const ws = await connect(gateway.url)
    ws.send('hello')
    t.equal((await nextMessage(ws)).data.toString(), 'hello')
    t.same(gateway.app.wsGateway.stats().engines, { passthrough: engine === 'passthrough' ? 1 : 0, ws: engine === 'ws' ? 1 : 0 }, engine)
    t.equal(lines.find((l) => l.msg === 'ws gateway connection open')?.engine, engine, `${engine}: in the open log line`)
    t.notOk(lines.some((l) => l.level === 40), `${engine}: no warning`)
    ws.close()
  }
})

t.test('canAdopt refuses sockets it does not know how to take over', async (t) => {
  const socket = new net.Socket()
  const ws = (fields: Record<string, unknown>, constructor?: unknown): WebSocket => Object.assign(Object.create({ constructor }), fields) as WebSocket
  const receiver = { _bufferedBytes: 0, _state: 0 }
  t.equal(canAdopt(ws({ _socket: {}, _receiver: receiver })), false, 'not a net.Socket')
  t.equal(canAdopt(ws({ _socket: socket })), false, 'no receiver')
  t.equal(canAdopt(ws({ _socket: socket, _receiver: { _bufferedBytes: 3, _state: 0 } })), false, 'bytes read')
  t.equal(canAdopt(ws({ _socket: socket, _receiver: { _bufferedBytes: 0, _state: 1 } })), false, 'mid-frame')
  class Throws { setSocket (): void { throw new Error('changed') } }
  class NoListeners { setSocket (): void {} }
  class Unlinked { setSocket (s: net.Socket): void { s.on('data', () => {}) } }
  for (const Class of [Throws, NoListeners, Unlinked, Object]) {
    t.equal(canAdopt(ws({ _socket: socket, _receiver: receiver }, Class)), false, `a WebSocket class that sets a socket up otherwise (${Class.name})`)
  }
  t.doesNotThrow(() => onFrameTooBig(ws({}), () => {}), 'no receiver: nothing to listen to')
})

t.test('sockets set up other than ws 8.23 does it are relayed by the ws engine, with a warning', async (t) => {
  /** A WebSocket whose socket gets its data listener wrapped: what a ws release might do. */
  class Changed extends WebSocket {
    setSocket (socket: net.Socket, head: Buffer, options: object): void {
      ;(WebSocket.prototype as unknown as { setSocket: (s: net.Socket, h: Buffer, o: object) => void }).setSocket.call(this, socket, head, options)
      const [onData] = socket.listeners('data') as Array<(chunk: Buffer) => void>
      socket.removeListener('data', onData)
      socket.on('data', (chunk: Buffer) => onData.call(socket, chunk))
    }
  }
  const backend = await startBackend(t)
  const { lines, logger } = captureLogs()
  const gateway = await startGateway(t, { backends: { [BACKEND_ID]: backend.url }, jwt: { secret: SECRET } }, { logger }, async (app) => {
    // verifyClient keeps the upgrade on ws's path (the gateway's own raw path builds no WebSocket).
    await app.register(fastifyWebsocket, { options: { WebSocket: Changed, perMessageDeflate: false, verifyClient: () => true } })
  })
  const ws = await connect(gateway.url)
  ws.send('relayed all the same')
  t.equal((await nextMessage(ws)).data.toString(), 'relayed all the same')
  t.same(gateway.app.wsGateway.stats().engines, { passthrough: 0, ws: 1 })
  t.match(lines.find((l) => l.level === 40), { msg: /relaying with the ws engine/ })
  t.equal(lines.find((l) => l.msg === 'ws gateway connection open')?.engine, 'ws')
  ws.close()
})

t.test('a minified build (esbuild --minify) still takes the sockets over', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ws-gateway-minified-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  const outfile = join(dir, 'gateway.min.js')
  buildSync({
    entryPoints: [join(__dirname, '../lib/index.ts')],
    outfile,
    bundle: true,
    minify: true,
    platform: 'node',
    format: 'cjs',
    logLevel: 'error',
    // The ws this process loads (the newest 8.x under test/ws-latest.test.ts), bundled and minified.
    alias: { ws: dirname(require.resolve('ws/package.json')) },
    external: ['bufferutil', 'utf-8-validate']
  })
  t.notMatch(await readFile(outfile, 'utf8'), 'socketOnData', 'ws\'s function names are gone')
  const minified = require(outfile) as FastifyPluginAsync<WsGatewayOptions>
  const backend = await startBackend(t)
  const app = Fastify()
  t.teardown(async () => await app.close())
  await app.register(minified, { backends: { [BACKEND_ID]: backend.url }, jwt: { secret: SECRET }, heartbeatInterval: 0 })
  await app.listen({ host: '127.0.0.1', port: 0 })
  const ws = await connect(`ws://127.0.0.1:${(app.server.address() as AddressInfo).port}/ws`)
  ws.send('minified')
  t.equal((await nextMessage(ws)).data.toString(), 'minified')
  t.same(app.wsGateway.stats().engines, { passthrough: 1, ws: 0 })
  ws.close(4000, 'bye')
  t.same(await closeOf(ws), { code: 4000, reason: 'bye' })
})
