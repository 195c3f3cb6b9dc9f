import { createHash, randomBytes } from 'node:crypto'
import { once } from 'node:events'
import http from 'node:http'
import net, { type AddressInfo, type Socket } from 'node:net'
import t from 'tap'
import WebSocket from 'ws'
import fastifyWebsocket from '@fastify/websocket'
import { RelayConnection } from '../lib/relay/connection'
import { FrameRelay } from '../lib/relay/passthrough/relay'
import { FrameCloser } from '../lib/relay/passthrough/closer'
import { closeFrame, controlFrame, frameProblem, headerSize, payloadLength } from '../lib/relay/passthrough/frames'
import { remask, xorWords } from '../lib/relay/passthrough/mask'
import type { WsGatewayOptions } from '../lib/index'
import { FrameReader, frame, rawSockets, type Frame } from './raw-frames'
import { BACKEND_ID, SECRET, authHeaders, captureLogs, connect, handshake, nextMessage, startBackend, startGateway, type LogLine, type TestLike } from './helpers'

// Frame-level tests of the passthrough engine: raw bytes on real sockets, on both legs.

const close = (code: number, reason = '', mask = true): Buffer => {
  const payload = Buffer.alloc(2 + Buffer.byteLength(reason))
  payload.writeUInt16BE(code)
  payload.write(reason, 2)
  return frame(8, payload, { mask })
}

/** Raw client sockets, destroyed after each test so no gateway waits on them. */
t.afterEach(() => {
  for (const socket of rawSockets) socket.destroy()
  rawSockets.clear()
})

interface RawBackend {
  url: string
  /** The next backend connection, with a reader over what the gateway sends it. */
  next: () => Promise<FrameReader>
}

/** A backend that completes the handshake by hand and then leaves the socket to the test. */
async function startRawBackend (t: TestLike, afterUpgrade?: (socket: Socket) => Uint8Array): Promise<RawBackend> {
  const arrived: FrameReader[] = []
  const sockets: Socket[] = []
  let wake: (() => void) | undefined
  const server = http.createServer()
  server.on('upgrade', (req: http.IncomingMessage, socket: Socket, head: Buffer) => {
    const accept = createHash('sha1').update(`${req.headers['sec-websocket-key'] as string}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64')
    const response = `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`
    // Frames written with the 101 arrive as the gateway's upgrade `head`.
    socket.write(Buffer.concat([Buffer.from(response), afterUpgrade?.(socket) ?? Buffer.alloc(0)]))
    sockets.push(socket)
    // A server ends its side once the client has ended its own (http sockets allow half-open).
    socket.on('end', () => socket.end())
    arrived.push(new FrameReader(socket, head))
    wake?.()
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(async () => {
    for (const socket of sockets) socket.destroy()
    await new Promise((resolve) => server.close(resolve))
  })
  return {
    url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}`,
    next: async () => {
      while (arrived.length === 0) await new Promise<void>((resolve) => { wake = resolve })
      return arrived.shift() as FrameReader
    }
  }
}

/** A gateway in front of `url`, logging to `lines`. */
async function gatewayFor (t: TestLike, url: string, options: Partial<WsGatewayOptions> = {}): Promise<{ port: number, url: string, lines: LogLine[], app: import('fastify').FastifyInstance }> {
  const { lines, logger } = captureLogs('debug')
  const gateway = await startGateway(t, { backends: { [BACKEND_ID]: url }, jwt: { secret: SECRET }, heartbeatInterval: 0, closeTimeout: 100, ...options }, { logger })
  return { ...gateway, lines }
}

/** The 'connection closed' log line, once the gateway has written it. */
async function ended (lines: LogLine[]): Promise<LogLine> {
  for (;;) {
    const line = lines.find((l) => l.msg === 'ws gateway connection closed')
    if (line !== undefined) return line
    await new Promise((resolve) => setTimeout(resolve, 5))
  }
}

/**
 * A raw client after a real handshake through the gateway; `extra` bytes go out in the same write
 * as the upgrade request. (Not `handshake()` from the helpers: what the gateway sends right after
 * the 101 can arrive as the upgrade's `head`, which it does not return.)
 */
async function rawClient (port: number, extra: Uint8Array = Buffer.alloc(0)): Promise<FrameReader> {
  const socket = net.connect(port, '127.0.0.1')
  await once(socket, 'connect')
  const headers = { ...authHeaders(), host: `127.0.0.1:${port}`, connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': randomBytes(16).toString('base64') }
  const request = `GET /ws HTTP/1.1\r\n${Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`
  socket.write(Buffer.concat([Buffer.from(request), extra]))
  let response = Buffer.alloc(0)
  for (;;) {
    const [chunk] = await once(socket, 'data') as [Buffer]
    response = Buffer.concat([response, chunk])
    const end = response.indexOf('\r\n\r\n')
    if (end !== -1) {
      socket.pause()
      if (!response.subarray(0, 12).toString().endsWith('101')) throw new Error(response.toString())
      const reader = new FrameReader(socket, response.subarray(end + 4))
      socket.resume()
      return reader
    }
  }
}

/** An echo backend that records how each connection closed. */
async function echoBackend (t: TestLike, options: Parameters<typeof startBackend>[1] = {}): Promise<{ url: string, closes: Array<Promise<{ code: number, reason: string }>>, sockets: WebSocket[] }> {
  const closes: Array<Promise<{ code: number, reason: string }>> = []
  const backend = await startBackend(t, {
    ...options,
    onConnection: (ws) => {
      closes.push(new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() }))))
      ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }))
    }
  })
  return { url: backend.url, closes, sockets: backend.sockets }
}

const sleep = async (ms: number): Promise<void> => await new Promise((resolve) => setTimeout(resolve, ms))

t.test('client frames that break RFC 6455 are closed 1002 and the backend gets 1001', async (t) => {
  const cases: Array<[string, Buffer, string]> = [
    ['an unmasked frame', frame(1, 'hi', { mask: false }), 'client frames must be masked'],
    ['RSV1 set', frame(1, 'hi', { rsv: 4 }), 'RSV bits must be clear'],
    ['RSV3 set', frame(2, 'hi', { rsv: 1 }), 'RSV bits must be clear'],
    ['data opcode 3', frame(3, 'hi'), 'invalid opcode'],
    ['control opcode 0xB', frame(0xb, 'hi'), 'invalid opcode'],
    ['a 126-byte ping', frame(9, Buffer.alloc(126)), 'control frame too long'],
    ['a fragmented ping', frame(9, 'hi', { fin: false }), 'control frames must not be fragmented'],
    ['a continuation with no message', frame(0, 'hi'), 'unexpected continuation frame'],
    ['a new message inside a fragmented one', Buffer.concat([frame(1, 'a', { fin: false }), frame(1, 'b')]), 'expected a continuation frame'],
    ['a 1-byte close', frame(8, 'x'), 'invalid close frame'],
    ['close code 1005', close(1005), 'invalid close code'],
    ['close code 999', close(999), 'invalid close code']
  ]
  const backend = await echoBackend(t)
  const gateway = await gatewayFor(t, backend.url)
  for (const [i, [name, bytes, reason]] of cases.entries()) {
    // The client speaks first here, so the helpers' handshake() loses nothing.
    const answer = await handshake(gateway.port, authHeaders())
    t.equal(answer.status, 101)
    const client = new FrameReader(answer.socket as Socket)
    client.socket.write(bytes)
    t.same(await client.close(), { code: 1002, reason }, name)
    t.same(await backend.closes[i], { code: 1001, reason: 'going away' }, `${name}: backend`)
    await client.closed()
  }
  const line = await ended(gateway.lines)
  t.equal(line.clientCode, 1006, 'a violator ends with 1006, as ws reports it')
})

t.test('a close reason that is not UTF-8 is closed 1007', async (t) => {
  const backend = await echoBackend(t)
  const gateway = await gatewayFor(t, backend.url)
  const client = await rawClient(gateway.port)
  client.socket.write(frame(8, Buffer.from([0x03, 0xe8, 0xc3, 0x28])))
  t.same(await client.close(), { code: 1007, reason: 'invalid UTF-8 in close reason' })
  t.same(await backend.closes[0], { code: 1001, reason: 'going away' })
})

t.test('a fragmented message over maxPayload closes the client 1009 and the backend 1001', async (t) => {
  const backend = await echoBackend(t)
  const gateway = await gatewayFor(t, backend.url, { maxPayload: 100 })
  const client = await rawClient(gateway.port)
  client.socket.write(Buffer.concat([frame(2, Buffer.alloc(60), { fin: false }), frame(0, Buffer.alloc(40), { fin: false })]))
  await sleep(30)
  t.equal(client.queued, 0, 'exactly maxPayload so far is fine')
  client.socket.write(frame(0, Buffer.alloc(1)))
  t.same(await client.close(), { code: 1009, reason: 'message too big' })
  t.same(await backend.closes[0], { code: 1001, reason: 'going away' })
})

t.test('a 64-bit length of 2^53 or more is closed 1009 before any payload', async (t) => {
  const backend = await echoBackend(t)
  const gateway = await gatewayFor(t, backend.url)
  const client = await rawClient(gateway.port)
  client.socket.write(Buffer.from([0x82, 0xff, 0x00, 0x20, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4]))
  t.same(await client.close(), { code: 1009, reason: 'message too big' })
})

t.test('a client ping gets an unmasked pong with its payload, and none reaches the backend', async (t) => {
  const pings: Buffer[] = []
  const backend = await startBackend(t, { onConnection: (ws) => { ws.on('ping', (data) => pings.push(data)); ws.on('message', (d, b) => ws.send(d, { binary: b })) } })
  const gateway = await gatewayFor(t, backend.url)
  const client = await rawClient(gateway.port)
  for (const payload of [Buffer.from('one'), Buffer.alloc(0), Buffer.alloc(125, 7)]) {
    client.socket.write(frame(9, payload))
    const pong = await client.next()
    t.same([pong?.opcode, pong?.masked, pong?.payload.toString('hex')], [10, false, payload.toString('hex')])
  }
  client.socket.write(frame(10, 'unsolicited'))
  client.socket.write(frame(1, 'sync'))
  t.equal((await client.next())?.payload.toString(), 'sync', 'a pong is swallowed')
  t.same(pings, [])
})

t.test('pings that come while a pong is being written are answered once, with the latest payload', async (t) => {
  const backend = await echoBackend(t)
  const gateway = await gatewayFor(t, backend.url)
  const client = await rawClient(gateway.port)
  client.socket.write(Buffer.concat([frame(9, 'first'), frame(9, 'second'), frame(9, 'third'), frame(1, 'sync')]))
  const got = [await client.next(), await client.next(), await client.next()]
  t.same(got.map((f) => [f?.opcode, f?.payload.toString()]).sort(), [[1, 'sync'], [10, 'first'], [10, 'third']])
})

t.test('client frames reach the backend masked with fresh keys of the gateway\'s, their payloads intact', async (t) => {
  const raw = await startRawBackend(t)
  const gateway = await gatewayFor(t, raw.url)
  const client = await rawClient(gateway.port)
  const backend = await raw.next()
  const zero = Buffer.alloc(4)
  const payloads = ['GET / HTTP/1.1', 'x'.repeat(200), 'y'.repeat(70_000), 'split header', 'z']
  const frames = payloads.map((p) => frame(1, p, { key: zero }))
  client.socket.write(Buffer.concat(frames.slice(0, 3)))
  // A header cut after its first byte, then its payload cut inside a 4-byte key cycle.
  client.socket.setNoDelay(true)
  client.socket.write(frames[3].subarray(0, 1))
  await sleep(20)
  client.socket.write(frames[3].subarray(1, 9))
  await sleep(20)
  client.socket.write(Buffer.concat([frames[3].subarray(9), frames[4]]))
  const seen: Frame[] = []
  for (let i = 0; i < payloads.length; i++) seen.push(await backend.next() as Frame)
  t.same(seen.map((f) => f.payload.toString()), payloads, 'every payload as the client sent it')
  t.ok(seen.every((f) => f.masked && !(f.key as Buffer).equals(zero)), 'no frame keeps the client\'s all-zero key')
  t.equal(new Set(seen.map((f) => (f.key as Buffer).toString('hex'))).size, payloads.length, 'a new key per frame')
})

t.test('fragmented messages pass through intact both ways, fragments as sent', async (t) => {
  const raw = await startRawBackend(t)
  const gateway = await gatewayFor(t, raw.url)
  const client = await rawClient(gateway.port)
  const backend = await raw.next()
  const fragments = [frame(1, 'héllo ', { fin: false }), frame(9, 'mid'), frame(0, 'wö', { fin: false }), frame(0, 'rld')]
  client.socket.write(Buffer.concat(fragments))
  const seen = [await backend.next(), await backend.next(), await backend.next()]
  t.same(seen.map((f) => [f?.fin, f?.opcode, f?.masked, f?.payload.toString()]), [[false, 1, true, 'héllo '], [false, 0, true, 'wö'], [true, 0, true, 'rld']])
  t.equal((await client.next())?.opcode, 10, 'the ping between fragments is answered')
  backend.socket.write(Buffer.concat([frame(2, 'ab', { fin: false, mask: false }), frame(0, 'cd', { mask: false })]))
  const back = [await client.next(), await client.next()]
  t.same(back.map((f) => [f?.fin, f?.opcode, f?.masked, f?.payload.toString()]), [[false, 2, false, 'ab'], [true, 0, false, 'cd']])
  client.socket.write(close(1000, 'bye'))
  t.same(await backend.close(), { code: 1000, reason: 'bye' })
  t.same(await client.close(), { code: 1000, reason: 'bye' }, 'the client gets its close echoed')
  backend.socket.end(close(1000, 'bye', false))
  const line = await ended(gateway.lines)
  t.same([line.clientCode, line.backendCode], [1000, 1000])
  t.same(line.fromClient, { frames: 1, bytes: 13 }, 'one message of 13 payload bytes')
  t.same(line.fromBackend, { frames: 1, bytes: 4 })
})

t.test('frames split across TCP writes byte by byte are relayed intact', async (t) => {
  const backend = await echoBackend(t)
  const gateway = await gatewayFor(t, backend.url)
  const client = await rawClient(gateway.port)
  client.socket.setNoDelay(true)
  const big = Buffer.alloc(300, 'x')
  const bytes = Buffer.concat([frame(1, 'split'), frame(9, 'p'), frame(2, big, { fin: false }), frame(0, '!')])
  for (const byte of bytes) {
    client.socket.write(Buffer.from([byte]))
    await sleep(0)
  }
  // A chunk that ends inside the next header, after whole frames (some empty).
  const next = frame(1, 'next')
  client.socket.write(Buffer.concat([frame(1, ''), frame(2, 'whole'), frame(1, '', { fin: false }), frame(0, ''), next.subarray(0, 3)]))
  await sleep(20)
  client.socket.write(next.subarray(3))
  const got = [await client.next(), await client.next(), await client.next(), await client.next(), await client.next(), await client.next(), await client.next()]
  t.same(got.map((f) => [f?.opcode, f?.payload.toString()]), [[1, 'split'], [10, 'p'], [2, `${big.toString()}!`], [1, ''], [2, 'whole'], [1, ''], [1, 'next']])
  client.socket.write(close(1000))
  t.same(await client.close(), { code: 1000, reason: '' })
  t.same(await backend.closes[0], { code: 1000, reason: '' })
})

t.test('random bytes never crash the gateway, and every connection is cleaned up (seeded fuzzer)', async (t) => {
  let seed = 0x2f6e2b1
  const random = (): number => {
    seed = (seed * 1103515245 + 12345) >>> 0
    return seed / 0x100000000
  }
  const backend = await echoBackend(t)
  const gateway = await gatewayFor(t, backend.url, { maxPayload: 4096 })
  const valid = [frame(1, 'hello'), frame(9, 'ping'), frame(2, Buffer.alloc(200, 1), { fin: false }), frame(0, 'end'), frame(10, ''), close(1000, 'x')]
  for (let i = 0; i < 60; i++) {
    const client = await rawClient(gateway.port)
    let bytes: Buffer
    if (i % 2 === 0) {
      bytes = Buffer.from(Array.from({ length: 1 + Math.floor(random() * 64) }, () => Math.floor(random() * 256)))
    } else {
      bytes = Buffer.concat(Array.from({ length: 1 + Math.floor(random() * 6) }, () => valid[Math.floor(random() * valid.length)]))
      for (let flips = Math.floor(random() * 4); flips > 0; flips--) bytes[Math.floor(random() * bytes.length)] = Math.floor(random() * 256)
    }
    for (let at = 0; at < bytes.length;) {
      const n = 1 + Math.floor(random() * 16)
      client.socket.write(bytes.subarray(at, at + n))
      at += n
    }
    client.socket.end()
    await client.closed()
  }
  for (let i = 0; i < 200 && gateway.app.wsGateway.stats().open > 0; i++) await sleep(10)
  t.equal(gateway.app.wsGateway.stats().open, 0, 'no connection left behind')
  const ws = await connect(gateway.url)
  ws.send('still alive')
  t.equal((await nextMessage(ws)).data.toString(), 'still alive')
  ws.close()
})

t.test('frames a backend sends with its 101 and a client sends with its upgrade are not lost', async (t) => {
  const raw = await startRawBackend(t, () => Buffer.concat([frame(1, 'early 1', { mask: false }), frame(2, 'early 2', { mask: false })]))
  const gateway = await gatewayFor(t, raw.url)
  const client = await rawClient(gateway.port, frame(1, 'eager'))
  const backend = await raw.next()
  t.same([(await client.next())?.payload.toString(), (await client.next())?.payload.toString()], ['early 1', 'early 2'])
  t.equal((await backend.next())?.payload.toString(), 'eager')
})

t.test('a backend that sends a message and closes at once: the client gets both', async (t) => {
  const backend = await startBackend(t, { onConnection: (ws) => { ws.send('first'); ws.close(4000, 'done') } })
  const gateway = await gatewayFor(t, backend.url)
  const client = await rawClient(gateway.port)
  t.equal((await client.next())?.payload.toString(), 'first')
  t.same(await client.close(), { code: 4000, reason: 'done' })
  client.socket.write(close(4000, 'done'))
  const line = await ended(gateway.lines)
  t.same([line.clientCode, line.backendCode], [4000, 4000])
})

t.test('backend frames that break RFC 6455 close the backend 1002 and the client 1014', async (t) => {
  const cases: Array<[string, Buffer, number, string, number, string]> = [
    ['a masked frame', frame(1, 'x'), 1002, 'server frames must not be masked', 1014, 'bad gateway'],
    ['RSV2', frame(1, 'x', { mask: false, rsv: 2 }), 1002, 'RSV bits must be clear', 1014, 'bad gateway'],
    ['a frame over maxPayload', frame(2, Buffer.alloc(101), { mask: false }), 1009, 'message too big', 1001, 'going away']
  ]
  const raw = await startRawBackend(t)
  const gateway = await gatewayFor(t, raw.url, { maxPayload: 100 })
  for (const [name, bytes, code, reason, clientCode, clientReason] of cases) {
    const client = await rawClient(gateway.port)
    const backend = await raw.next()
    backend.socket.write(bytes)
    t.same(await backend.close(), { code, reason }, name)
    const closing = await backend.next()
    t.equal(closing, undefined, `${name}: the gateway ends the backend's TCP connection`)
    t.same(await client.close(), { code: clientCode, reason: clientReason }, `${name}: client`)
  }
})

t.test('a backend maxPayload lower than the gateway\'s is applied to the backend leg', async (t) => {
  const raw = await startRawBackend(t)
  const gateway = await gatewayFor(t, raw.url, { backends: { [BACKEND_ID]: { url: raw.url, maxPayload: 10 } } })
  const client = await rawClient(gateway.port)
  const backend = await raw.next()
  backend.socket.write(frame(2, Buffer.alloc(11), { mask: false }))
  t.same(await backend.close(), { code: 1009, reason: 'message too big' })
  t.same(await client.close(), { code: 1001, reason: 'going away' })
})

t.test('backend pings get one masked pong; closes with no status pass on as no status', async (t) => {
  const raw = await startRawBackend(t)
  const gateway = await gatewayFor(t, raw.url)
  const client = await rawClient(gateway.port)
  const backend = await raw.next()
  backend.socket.write(frame(9, 'are you there', { mask: false }))
  const pong = await backend.next()
  t.same([pong?.opcode, pong?.masked, pong?.payload.toString()], [10, true, 'are you there'])
  backend.socket.write(frame(8, '', { mask: false }))
  t.same(await backend.close(), { code: 1005, reason: '' }, 'the gateway answers with an empty close too')
  t.same(await client.close(), { code: 1005, reason: '' })
  client.socket.write(frame(8, ''))
  const line = await ended(gateway.lines)
  t.same([line.clientCode, line.backendCode], [1005, 1005])
})

t.test('control frames wait for the end of a frame being relayed to the same leg', async (t) => {
  const raw = await startRawBackend(t)
  const gateway = await gatewayFor(t, raw.url)
  const client = await rawClient(gateway.port)
  const backend = await raw.next()
  const big = frame(2, Buffer.alloc(1000, 3), { mask: false })
  backend.socket.write(big.subarray(0, 500))
  await sleep(20)
  for (let i = 0; i < 40; i++) client.socket.write(frame(9, `${i}`))
  await sleep(50)
  t.equal(client.queued, 0, 'nothing is written inside the half-sent frame')
  backend.socket.write(big.subarray(500))
  const data = await client.next()
  t.same([data?.opcode, data?.payload.length], [2, 1000])
  const pong = await client.next()
  t.same([pong?.opcode, pong?.payload.toString()], [10, '39'], 'one pong waited, for the latest ping')
  backend.socket.write(big.subarray(0, 500))
  await sleep(20)
  client.socket.write(close(1000, 'done'))
  await sleep(50)
  t.equal(client.queued, 0, 'the close answer waits for the end of the frame too')
  backend.socket.write(big.subarray(500))
  t.equal((await client.next())?.payload.length, 1000)
  t.same(await client.close(), { code: 1000, reason: 'done' })
  t.same(await backend.close(), { code: 1000, reason: 'done' })
})

t.test('a backend that drops in the middle of a frame cuts the client\'s connection', async (t) => {
  const raw = await startRawBackend(t)
  const gateway = await gatewayFor(t, raw.url)
  const client = await rawClient(gateway.port)
  const backend = await raw.next()
  backend.socket.write(frame(2, Buffer.alloc(1000), { mask: false }).subarray(0, 100))
  await sleep(20)
  backend.socket.destroy()
  await client.closed()
  const line = await ended(gateway.lines)
  t.same([line.clientCode, line.backendCode], [1006, 1006])
})

t.test('a backend that drops between frames closes the client 1014', async (t) => {
  const raw = await startRawBackend(t)
  const gateway = await gatewayFor(t, raw.url)
  const client = await rawClient(gateway.port)
  const backend = await raw.next()
  backend.socket.end()
  t.same(await client.close(), { code: 1014, reason: 'bad gateway' })
})

t.test('a client that half-closes without a close frame takes the backend down', async (t) => {
  const backend = await echoBackend(t)
  const gateway = await gatewayFor(t, backend.url)
  const client = await rawClient(gateway.port)
  client.socket.write(frame(1, 'x', { fin: false }))
  client.socket.end()
  t.equal((await backend.closes[0]).code, 1006)
  await client.closed()
})

t.test('a leg that never answers our close is destroyed after closeTimeout', async (t) => {
  const saved = FrameCloser.closeTimeout
  FrameCloser.closeTimeout = 100
  t.teardown(() => { FrameCloser.closeTimeout = saved })
  const raw = await startRawBackend(t)
  const gateway = await gatewayFor(t, raw.url)
  const client = await rawClient(gateway.port)
  const backend = await raw.next()
  backend.socket.write(close(3001, 'bye', false))
  t.same(await backend.close(), { code: 3001, reason: 'bye' })
  t.same(await client.close(), { code: 3001, reason: 'bye' })
  await client.closed()
  const line = await ended(gateway.lines)
  t.same([line.clientCode, line.backendCode], [1006, 3001])
})

t.test('a shutdown closes the client first; a client that then breaks the protocol is ended', async (t) => {
  const backend = await echoBackend(t)
  const gateway = await gatewayFor(t, backend.url)
  const client = await rawClient(gateway.port)
  const closing = gateway.app.close()
  t.same(await client.close(), { code: 1001, reason: 'server shutting down' })
  client.socket.write(frame(1, 'late but delivered'))
  client.socket.write(frame(1, 'unmasked', { mask: false }))
  await client.closed()
  t.same(await backend.closes[0], { code: 1001, reason: 'server shutting down' })
  await closing
})

t.test('heartbeats: unmasked pings to clients, masked to backends; a silent leg is cut', async (t) => {
  const raw = await startRawBackend(t)
  const gateway = await gatewayFor(t, raw.url, { heartbeatInterval: 1000 })
  const client = await rawClient(gateway.port)
  const backend = await raw.next()
  const [toClient, toBackend] = [await client.next(), await backend.next()]
  t.same([toClient?.opcode, toClient?.masked, toClient?.payload.length], [9, false, 0])
  t.same([toBackend?.opcode, toBackend?.masked, toBackend?.payload.length], [9, true, 0])
  client.socket.write(frame(10, ''))
  // The backend never answers: it is destroyed at the next tick, and the client gets 1014.
  for (;;) {
    const f = await client.next()
    if (f?.opcode === 9) { client.socket.write(frame(10, '')); continue }
    t.same([f?.opcode, f?.payload.readUInt16BE(0), f?.payload.subarray(2).toString()], [8, 1014, 'bad gateway'])
    break
  }
  await backend.closed()
})

t.test('idle timeout closes both legs 1001, even with a frame half relayed', async (t) => {
  const raw = await startRawBackend(t)
  const gateway = await gatewayFor(t, raw.url, { idleTimeout: 1000 })
  const client = await rawClient(gateway.port)
  const backend = await raw.next()
  const big = frame(2, Buffer.alloc(100), { fin: false })
  client.socket.write(big.subarray(0, 50))
  t.same(await client.close(), { code: 1001, reason: 'idle timeout' })
  await sleep(30)
  t.equal(backend.queued, 0, 'the close to the backend waits for the end of the frame')
  client.socket.write(big.subarray(50))
  const f = await backend.next()
  t.same([f?.opcode, f?.fin, f?.payload.length], [2, false, 100])
  t.same(await backend.close(), { code: 1001, reason: 'idle timeout' })
})

t.test('a small highWaterMark pauses the sender; every byte still arrives', async (t) => {
  const raw = await startRawBackend(t)
  const gateway = await gatewayFor(t, raw.url, { highWaterMark: 1000 })
  const client = await rawClient(gateway.port)
  const backend = await raw.next()
  const message = Buffer.alloc(1024 * 1024, 5)
  backend.socket.write(frame(2, message, { mask: false }))
  backend.socket.write(frame(9, 'ping while paused', { mask: false }))
  const f = await client.next()
  t.equal(f?.payload.length, message.length)
  t.equal((await backend.next())?.opcode, 10)
})

t.test('legs with an extension and engine: "ws" use the ws engine', async (t) => {
  // The ws engine answers an unmasked client frame with a bare 1002: no reason, unlike this one.
  const deflating = await startBackend(t, { perMessageDeflate: true })
  const viaDeflate = await startGateway(t, { backends: { [BACKEND_ID]: { url: deflating.url, perMessageDeflate: true } }, jwt: { secret: SECRET }, heartbeatInterval: 0 })
  const plain = await echoBackend(t)
  const viaWs = await gatewayFor(t, plain.url, { engine: 'ws' })
  const clientDeflate = await startGateway(t, { backends: { [BACKEND_ID]: plain.url }, jwt: { secret: SECRET }, heartbeatInterval: 0 }, {}, async (app) => {
    await app.register(fastifyWebsocket, { options: { perMessageDeflate: true } })
  })
  for (const port of [viaDeflate.port, viaWs.port]) {
    const client = await rawClient(port)
    client.socket.write(frame(1, 'x', { mask: false }))
    t.same(await client.close(), { code: 1002, reason: '' })
  }
  const ws = await connect(clientDeflate.url, authHeaders())
  t.equal(ws.extensions, '', 'helpers connect without compression')
  const offering = new WebSocket(clientDeflate.url, { headers: authHeaders() })
  await once(offering, 'open')
  t.match(offering.extensions, /permessage-deflate/)
  offering.send('compressed')
  t.equal((await nextMessage(offering)).data.toString(), 'compressed')
  offering.close()
  ws.close()
})

t.test('a socket that closed before the relay started ends the connection once registered', async (t) => {
  const server = net.createServer((s) => s.destroy())
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => server.close())
  const { port } = server.address() as AddressInfo
  const [a, b] = [net.connect(port, '127.0.0.1'), net.connect(port, '127.0.0.1')]
  a.on('error', () => {})
  b.on('error', () => {})
  await Promise.all([once(a, 'close'), once(b, 'close')])
  /** A WebSocket on `socket`, set up as ws's server sets one up (`setSocket`). */
  const ws = (socket: Socket): WebSocket => {
    const server = new (WebSocket as unknown as new (...args: unknown[]) => WebSocket)(null, undefined, {})
    ;(server as unknown as { setSocket: (s: Socket, head: Buffer, o: object) => void }).setSocket(socket, Buffer.alloc(0), {})
    return server
  }
  let endedWith: [number | undefined, number | undefined] | undefined
  const log = { debug () {} } as unknown as import('fastify').FastifyBaseLogger
  const connection = new RelayConnection({
    maxPayload: 100,
    backendMaxPayload: 200,
    highWaterMark: 1000,
    idleTimeout: 0,
    slowConsumerTimeout: 0,
    slowConsumerCloseCode: 1008,
    rateLimit: false,
    log,
    onEnd: (c) => { endedWith = [c.client.code, c.backend.code] }
  }, (c) => new FrameRelay(ws(a), ws(b), c))
  const relay = connection.engine as FrameRelay
  t.equal(endedWith, undefined, 'not before the route registered it')
  await sleep(0)
  t.same(endedWith, [1006, 1006])
  t.equal(relay.client.maxPayload, 100, 'the gateway\'s')
  t.equal(relay.backend.maxPayload, 200, 'the backend\'s own')
  connection.heartbeat()
  connection.terminate()
})

t.test('re-masking matches a plain XOR at every memory alignment, payload offset and length', async (t) => {
  const delta = 0xa1b2c3d4
  const deltaBytes = [0xa1, 0xb2, 0xc3, 0xd4]
  for (const align of [0, 1, 2, 3]) {
    for (const length of [4, 7, 127, 128, 1001]) {
      for (const offset of [0, 1, 2, 3]) {
        const data = randomBytes(length)
        const expected = Buffer.from(data.map((b, i) => b ^ deltaBytes[(offset + i) & 3]))
        const viaRemask = Buffer.alloc(length + 8)
        data.copy(viaRemask, align)
        remask(viaRemask, align, align + length, delta, offset)
        const viaWords = Buffer.alloc(length + 8).subarray(align)
        data.copy(viaWords)
        // xorWords takes its key turned already: byte `offset` of delta first.
        const turned = Buffer.from([0, 1, 2, 3].map((j) => deltaBytes[(offset + j) & 3])).readUInt32BE()
        xorWords(viaWords, 0, length, turned)
        const name = `${length} bytes at ${align}, from payload byte ${offset}`
        t.same(viaRemask.subarray(align, align + length), expected, `remask: ${name}`)
        t.same(viaWords.subarray(0, length), expected, `xorWords: ${name}`)
      }
    }
  }
})

t.test('frame helpers: lengths, problems and encodings', async (t) => {
  t.equal(headerSize(0x05), 2)
  t.equal(headerSize(0xfe), 8)
  t.equal(headerSize(0x7f), 10)
  t.equal(payloadLength(Buffer.from([0x82, 127, 0, 0x1f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]), 0), 2 ** 53 - 1)
  t.equal(payloadLength(Buffer.from([0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0]), 0), -1)
  t.equal(frameProblem(0x8a, 0x00, false, true), undefined, 'a pong inside a fragmented message')
  t.equal(frameProblem(0x80, 0x80, true, true), undefined, 'a continuation')
  t.equal(frameProblem(0x82, 0x00, false, false), undefined)
  t.same([...closeFrame(1000, Buffer.from('ok'), false)], [0x88, 4, 0x03, 0xe8, 0x6f, 0x6b])
  t.same([...closeFrame(undefined, Buffer.alloc(0), false)], [0x88, 0])
  const masked = controlFrame(9, Buffer.from('abc'), true)
  t.same([masked[0], masked[1], masked.length], [0x89, 0x83, 9])
  t.same([...masked.subarray(6)].map((b, i) => b ^ masked[2 + i]), [...Buffer.from('abc')])
})

t.test('rateLimit drop: whole messages are dropped and counted, fragments included', async (t) => {
  const raw = await startRawBackend(t)
  const gateway = await gatewayFor(t, raw.url, { rateLimit: { messagesPerSecond: 2, onExceeded: 'drop' } })
  const client = await rawClient(gateway.port)
  const backend = await raw.next()
  client.socket.write(Buffer.concat([
    frame(1, 'one'), frame(1, 'two'), frame(1, 'dropped', { fin: false }), frame(0, 'with its continuation'), frame(2, 'dropped too')
  ]))
  await sleep(1100)
  client.socket.write(frame(1, 'three'))
  const got = [await backend.next(), await backend.next(), await backend.next()]
  t.same(got.map((f) => f?.payload.toString()), ['one', 'two', 'three'])
  client.socket.write(close(1000))
  t.same(await backend.close(), { code: 1000, reason: '' })
  backend.socket.end(close(1000, '', false))
  const line = await ended(gateway.lines)
  t.equal(line.dropped, 2)
})

t.test('rateLimit close: the client gets 1008 after what it sent before, the backend 1001', async (t) => {
  const raw = await startRawBackend(t)
  const gateway = await gatewayFor(t, raw.url, { rateLimit: { messagesPerSecond: 1 } })
  const client = await rawClient(gateway.port)
  const backend = await raw.next()
  client.socket.write(Buffer.concat([frame(1, 'allowed'), frame(1, 'over')]))
  t.equal((await backend.next())?.payload.toString(), 'allowed')
  t.same(await backend.close(), { code: 1001, reason: 'going away' })
  t.same(await client.close(), { code: 1008, reason: 'rate limit' })
})

t.test('rateLimit drop cannot drop half a message: an over-limit continuation closes 1008', async (t) => {
  const raw = await startRawBackend(t)
  const gateway = await gatewayFor(t, raw.url, { rateLimit: { bytesPerSecond: 10, onExceeded: 'drop' } })
  const client = await rawClient(gateway.port)
  const backend = await raw.next()
  client.socket.write(Buffer.concat([frame(1, 'half', { fin: false }), frame(0, ' and the rest')]))
  t.same([(await backend.next())?.payload.toString(), (await backend.close()).code], ['half', 1001])
  t.same(await client.close(), { code: 1008, reason: 'rate limit' })
})

t.test('a client that pings without reading is still read; at most one pong waits, for its latest ping', async (t) => {
  const backend = await echoBackend(t)
  const gateway = await gatewayFor(t, backend.url, { rateLimit: false })
  const client = await rawClient(gateway.port)
  client.socket.pause()
  const count = 150_000
  // 19 MiB of pings, all read by the gateway although the client reads nothing: it never sits on
  // a pong per ping, so it has no reason to stop reading.
  await flood(client.socket, frame(9, Buffer.alloc(125, 1)), count)
  client.socket.write(Buffer.concat([frame(9, 'last'), frame(1, 'sync')]))
  client.socket.resume()
  let pongs = 0
  let latest = ''
  let synced = false
  while (!synced || latest !== 'last') {
    const f = await client.next()
    if (f === undefined) throw new Error('the gateway closed the connection')
    if (f.opcode === 10) {
      pongs++
      latest = f.payload.toString()
    } else {
      synced = f.payload.toString() === 'sync'
    }
  }
  t.ok(pongs < count / 10, `${pongs} pongs for ${count + 1} pings`)
  t.pass('the latest ping is answered, last')
})

/** Resolves once what `socket` has to write stops going out (its peer stopped reading it). */
async function stalled (socket: Socket): Promise<void> {
  let last = -1
  for (let still = 0; still < 5; await sleep(100)) {
    still = socket.writableLength > 0 && socket.writableLength === last ? still + 1 : 0
    last = socket.writableLength
  }
}

/** Writes `count` copies of `bytes` to a socket, resolving once all are handed to the kernel. */
async function flood (socket: Socket, bytes: Buffer, count: number): Promise<void> {
  const batch = Buffer.concat(Array.from({ length: 100 }, () => bytes))
  for (let i = 0; i < count / 100; i++) {
    if (!socket.write(batch)) await once(socket, 'drain')
  }
}

t.test('a client that stops reading pauses the backend (small highWaterMark); nothing is lost', async (t) => {
  const raw = await startRawBackend(t)
  const gateway = await gatewayFor(t, raw.url, { highWaterMark: 1000 })
  const client = await rawClient(gateway.port)
  const backend = await raw.next()
  client.socket.pause()
  const count = 6000
  const flooding = flood(backend.socket, frame(2, Buffer.alloc(2000, 9), { mask: false }), count)
  await stalled(backend.socket)
  t.pass('the gateway stopped reading the backend')
  client.socket.resume()
  let received = 0
  for (; received < count; received++) {
    const f = await client.next()
    if (f?.payload.length !== 2000) break
  }
  t.equal(received, count)
  await flooding
})

t.test('frames that come one by one to a client that stops reading: paused past a small highWaterMark', async (t) => {
  const raw = await startRawBackend(t)
  const gateway = await gatewayFor(t, raw.url, { highWaterMark: 1000 })
  const client = await rawClient(gateway.port)
  const backend = await raw.next()
  client.socket.pause()
  // Each frame on its own read, so that the gateway's writes stay under the socket's own 16 KiB
  // buffer: passing `highWaterMark` alone has to pause the backend.
  let sent = 0
  while (backend.socket.writableLength === 0) {
    backend.socket.write(frame(2, Buffer.alloc(12_000, sent % 256), { mask: false }))
    sent++
    await sleep(1)
  }
  await stalled(backend.socket)
  t.pass(`the gateway stopped reading the backend after ${sent} frames`)
  client.socket.resume()
  for (let i = 0; i < sent; i++) {
    const f = await client.next()
    if (f?.payload.length !== 12_000 || f.payload[0] !== i % 256) return t.fail(`frame ${i}`)
  }
  t.pass('every frame arrived, in order')
})

t.test('a backend that stops reading pauses the client; nothing is lost', async (t) => {
  const raw = await startRawBackend(t)
  const gateway = await gatewayFor(t, raw.url)
  const client = await rawClient(gateway.port)
  const backend = await raw.next()
  backend.socket.pause()
  const count = 1000
  const flooding = flood(client.socket, frame(2, Buffer.alloc(30_000, 9)), count)
  await stalled(client.socket)
  t.pass('the gateway stopped reading the client')
  backend.socket.resume()
  let received = 0
  for (; received < count; received++) {
    const f = await backend.next()
    if (f?.payload.length !== 30_000) break
  }
  t.equal(received, count)
  await flooding
})

t.test('slowConsumerTimeout closes a client that keeps the backend paused', async (t) => {
  const raw = await startRawBackend(t)
  const gateway = await gatewayFor(t, raw.url, { slowConsumerTimeout: 1000, slowConsumerCloseCode: 1013 })
  const client = await rawClient(gateway.port)
  const backend = await raw.next()
  client.socket.pause()
  flood(backend.socket, frame(2, Buffer.alloc(60_000), { mask: false }), 500).catch(() => {})
  t.same(await backend.close(), { code: 1001, reason: 'going away' })
  client.socket.resume()
  for (;;) {
    const f = await client.next()
    if (f?.opcode === 8) {
      t.same([f.payload.readUInt16BE(0), f.payload.subarray(2).toString()], [1013, 'slow consumer'])
      break
    }
  }
})

t.test('a backend that drops while a client frame is half relayed: the rest goes nowhere', async (t) => {
  const raw = await startRawBackend(t)
  const gateway = await gatewayFor(t, raw.url)
  const client = await rawClient(gateway.port)
  const backend = await raw.next()
  const big = frame(2, Buffer.alloc(1000))
  client.socket.write(big.subarray(0, 500))
  await sleep(20)
  backend.socket.destroy()
  t.same(await client.close(), { code: 1014, reason: 'bad gateway' })
  client.socket.write(big.subarray(500))
  client.socket.end(close(1014))
  await client.closed()
  const line = await ended(gateway.lines)
  t.same([line.clientCode, line.backendCode], [1014, 1006])
})

t.test('a close answer waiting for a frame boundary is dropped when the client half-closes', async (t) => {
  const raw = await startRawBackend(t)
  const gateway = await gatewayFor(t, raw.url)
  const client = await rawClient(gateway.port)
  const backend = await raw.next()
  const big = frame(2, Buffer.alloc(1000), { mask: false })
  backend.socket.write(big.subarray(0, 500))
  await sleep(20)
  client.socket.end(close(1000))
  t.same(await backend.close(), { code: 1000, reason: '' })
  await sleep(20)
  backend.socket.end(Buffer.concat([big.subarray(500), close(1000, '', false)]))
  // The client's FIN made the gateway end its side too: the rest of the frame and the close
  // answer that waited for it have nowhere to go.
  t.equal(await client.next(), undefined, 'no whole frame and no close frame after the client\'s FIN')
  const line = await ended(gateway.lines)
  t.same([line.clientCode, line.backendCode], [1000, 1000])
})

t.test('a client that resets its TCP connection: logged at debug, the backend is cut (1006)', async (t) => {
  const backend = await echoBackend(t)
  const gateway = await gatewayFor(t, backend.url)
  const client = await rawClient(gateway.port)
  client.socket.resetAndDestroy()
  t.same(await backend.closes[0], { code: 1006, reason: '' })
  const line = await ended(gateway.lines)
  t.equal(line.clientCode, 1006)
  const error = gateway.lines.find((l) => l.msg === 'ws gateway leg error')
  t.equal(error?.leg, 'client')
  t.equal((error?.err as { code?: string } | undefined)?.code, 'ECONNRESET')
})

t.test('a message pushed through the API waits for the end of a frame the backend is half-way through', async (t) => {
  let backendSocket: Socket | undefined
  const backend = await startRawBackend(t, (socket) => {
    backendSocket = socket
    return Buffer.alloc(0)
  })
  const gateway = await gatewayFor(t, backend.url)
  const client = await rawClient(gateway.port)
  await backend.next()
  const [{ id }] = (await gateway.app.wsGateway.list()).items
  const payload = Buffer.alloc(1000, 7)
  const whole = frame(2, payload, { mask: false })
  // The header and half the payload of one single-frame message, then the pushes, then the rest.
  ;(backendSocket as Socket).write(whole.subarray(0, 504))
  await new Promise((resolve) => setTimeout(resolve, 50))
  await gateway.app.wsGateway.send(id, 'first push')
  await gateway.app.wsGateway.send(id, Buffer.from('second push'))
  ;(backendSocket as Socket).write(whole.subarray(504))
  const frames = [await client.next(), await client.next(), await client.next()]
  t.same(frames.map((f) => [f?.opcode, f?.payload.length]), [[2, 1000], [1, 10], [2, 11]])
  t.same(frames.map((f) => f?.masked), [false, false, false], 'server frames are never masked')
})
