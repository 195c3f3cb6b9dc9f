import { once } from 'node:events'
import http from 'node:http'
import https from 'node:https'
import net, { type AddressInfo } from 'node:net'
import type { TLSSocket } from 'node:tls'
import t from 'tap'
import fastifyWebsocket from '@fastify/websocket'
import Fastify from 'fastify'
import WebSocket, { WebSocketServer } from 'ws'
import { createCertificate } from '../example/tls'
import wsGateway from '../lib/index'
import { takesRawSockets } from '../lib/handshake/upgrade'
import { acceptFor, AnswerReader, MAX_ANSWER_HEAD } from '../lib/upstream/answer'
import { BACKEND_ID, SECRET, authHeaders, captureLogs, closeOf, connect, handshake, nextMessage, startGateway, startPair, until, type LogLine, type TestLike } from './helpers'

/*
 * The raw path: with the passthrough engine the gateway opens the backend with its own HTTP/1.1
 * upgrade and completes the client's 101 itself (no ws WebSocket on either leg). These tests
 * talk to backends that answer what a ws server never would.
 */

interface RawBackend {
  url: string
  /** The head of each upgrade request received, as text. */
  heads: string[]
  /** Resolves when the gateway closes a connection to this backend. */
  closed: () => Promise<void>
}

/** A TCP server that reads each upgrade request's head and lets `answer` reply (given its key). */
async function rawBackend (t: TestLike, answer: (socket: net.Socket, key: string) => void): Promise<RawBackend> {
  const heads: string[] = []
  const sockets = new Set<net.Socket>()
  const server = net.createServer((socket) => {
    sockets.add(socket)
    socket.on('error', () => {})
    let text = ''
    socket.on('data', function onHead (chunk) {
      text += chunk.toString('latin1')
      const end = text.indexOf('\r\n\r\n')
      if (end === -1) return
      socket.removeListener('data', onHead)
      heads.push(text.slice(0, end))
      answer(socket, /sec-websocket-key: (\S+)/i.exec(text)?.[1] as string)
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => {
    for (const socket of sockets) socket.destroy()
    server.close()
  })
  return {
    url: `ws://127.0.0.1:${(server.address() as AddressInfo).port}/up?a=1`,
    heads,
    closed: async () => { await once(server, 'connection').then(async ([socket]) => await once(socket as net.Socket, 'close')) }
  }
}

function switching (key: string, extra = ''): string {
  return `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptFor(key)}\r\n${extra}\r\n`
}

/** An unmasked text frame, as a backend sends it. */
function textFrame (text: string): Buffer {
  return Buffer.concat([Buffer.from([0x81, text.length]), Buffer.from(text)])
}

async function gatewayTo (t: TestLike, url: string, extra: Record<string, unknown> = {}): Promise<{ port: number, url: string, lines: LogLine[] }> {
  const { lines, logger } = captureLogs()
  const gateway = await startGateway(t, { backends: { [BACKEND_ID]: url }, jwt: { secret: SECRET }, heartbeatInterval: 0, connectTimeout: 500, ...extra }, { logger })
  return { port: gateway.port, url: gateway.url, lines }
}

function openLine (lines: LogLine[]): LogLine | undefined {
  return lines.find((line) => line.msg === 'ws gateway connection open')
}

/** What a backend answers, the status the client gets, and what the gateway logs about it. */
const refusals: Array<[string, (socket: net.Socket, key: string) => void, number, RegExp]> = [
  ['a wrong Sec-WebSocket-Accept', (s) => s.write(switching('AAAAAAAAAAAAAAAAAAAAAA==')), 502, /wrong Sec-WebSocket-Accept/],
  ['no Upgrade header', (s, key) => s.write(`HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${acceptFor(key)}\r\n\r\n`), 502, /Upgrade is not websocket/],
  ['no Connection header', (s, key) => s.write(`HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nSec-WebSocket-Accept: ${acceptFor(key)}\r\n\r\n`), 502, /Connection is not upgrade/],
  ['a Connection other than upgrade', (s, key) => s.write(switching(key).replace('Connection: Upgrade', 'Connection: keep-alive')), 502, /Connection is not upgrade/],
  ['an extension nobody offered', (s, key) => s.write(switching(key, 'Sec-WebSocket-Extensions: permessage-deflate\r\n')), 502, /extension was not offered/],
  ['a subprotocol the client did not offer', (s, key) => s.write(switching(key, 'Sec-WebSocket-Protocol: chat\r\n')), 502, /subprotocol the client did not offer/],
  ['a 4xx (passed through)', (s) => s.end('HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n'), 403, /refused the handshake/],
  ['a 500', (s) => s.end('HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n'), 502, /refused the handshake/],
  ['a 3xx (not followed)', (s) => s.end('HTTP/1.1 302 Found\r\nLocation: ws://example.test/\r\nContent-Length: 0\r\n\r\n'), 502, /refused the handshake/],
  ['garbage', (s) => s.write('hello there\r\n\r\n'), 502, /malformed status line/],
  ['a malformed header line', (s, key) => s.write(switching(key).replace('Upgrade: websocket', 'Upgrade websocket')), 502, /malformed header line/],
  ['a head over the limit in one piece', (s, key) => s.write(switching(key, `X-Pad: ${'x'.repeat(MAX_ANSWER_HEAD)}\r\n`)), 502, /answer head too long/],
  ['a header that never ends', (s) => {
    s.write('HTTP/1.1 101 Switching Protocols\r\n')
    const timer = setInterval(() => { if (s.writable) s.write(`X-Pad: ${'x'.repeat(1000)}\r\n`) }, 1)
    s.once('close', () => clearInterval(timer))
  }, 502, /answer head too long/],
  ['a close in the middle of the head', (s) => s.end('HTTP/1.1 101 Switching'), 502, /closed the connection before answering/],
  ['nothing at all (504)', () => {}, 504, /did not answer in time/]
]

// The same answers through ws (the ws engine) get the same statuses: the raw path changes no error.
for (const engine of ['passthrough', 'ws']) {
  for (const [what, answer, status, logged] of refusals) {
    t.test(`${engine} engine: a backend answering ${what}: ${status}, its connection closed`, async (t) => {
      const backend = await rawBackend(t, answer)
      const gateway = await gatewayTo(t, backend.url, { engine })
      const closed = backend.closed()
      const res = await handshake(gateway.port, authHeaders())
      t.equal(res.status, status)
      if (status === 403) t.equal(res.body.code, 'FST_WS_GATEWAY_BACKEND_REFUSED')
      await closed
      t.equal(backend.heads.length, 1)
      if (engine === 'passthrough') t.ok(gateway.lines.some((line) => line.level === 40 && logged.test(`${line.msg} ${String(line.reason)}`)), `logged: ${String(logged)}`)
    })
  }
}

t.test('the upgrade request the gateway writes: path, query, Host, handshake headers, the offer and x-connection-id', async (t) => {
  const backend = await rawBackend(t, (s) => s.end('HTTP/1.1 404 Not Found\r\n\r\n'))
  const gateway = await gatewayTo(t, backend.url, {
    rewriteRequestHeaders: (_request: unknown, headers: Record<string, string | string[]>) => ({ ...headers, 'X-Multi': ['one', 'two'], 'Sec-WebSocket-Extensions': 'permessage-deflate' })
  })
  const res = await handshake(gateway.port, { ...authHeaders(), 'sec-websocket-protocol': 'chat, superchat' }, '/ws?b=2')
  t.equal(res.status, 404)
  const [requestLine, ...lines] = backend.heads[0].split('\r\n')
  t.equal(requestLine, 'GET /up?a=1&b=2 HTTP/1.1')
  const port = new URL(backend.url).port
  t.ok(lines.includes(`Host: 127.0.0.1:${port}`))
  t.ok(lines.includes('Connection: Upgrade') && lines.includes('Upgrade: websocket') && lines.includes('Sec-WebSocket-Version: 13'))
  const key = lines.find((line) => line.startsWith('Sec-WebSocket-Key: '))?.slice(19) as string
  t.equal(Buffer.from(key, 'base64').length, 16, 'a 16-byte random key')
  t.ok(lines.includes('sec-websocket-protocol: chat, superchat'))
  t.ok(lines.some((line) => /^x-connection-id: \S+$/.test(line)))
  t.same(lines.filter((line) => line.startsWith('X-Multi')), ['X-Multi: one', 'X-Multi: two'], 'an array as repeated lines')
  t.notOk(lines.some((line) => /^sec-websocket-extensions/i.test(line)), 'the gateway offers no extension, whatever the headers say')
})

t.test('a Host header of the app\'s is sent instead of the URL\'s', async (t) => {
  const backend = await rawBackend(t, (s) => s.end('HTTP/1.1 404 Not Found\r\n\r\n'))
  const gateway = await gatewayTo(t, backend.url, { rewriteRequestHeaders: (_request: unknown, headers: object) => ({ ...headers, host: 'backend.example' }) })
  await handshake(gateway.port, authHeaders())
  const lines = backend.heads[0].split('\r\n')
  t.same(lines.filter((line) => /^host:/i.test(line)), ['host: backend.example'])
})

t.test('frames a backend sends in the same segment as its 101 reach the client first', async (t) => {
  const backend = await rawBackend(t, (s, key) => s.write(Buffer.concat([Buffer.from(switching(key, 'Sec-WebSocket-Protocol: chat\r\n')), textFrame('first'), textFrame('second')])))
  const gateway = await gatewayTo(t, backend.url)
  const ws = new WebSocket(gateway.url, ['chat'], { headers: authHeaders(), perMessageDeflate: false })
  const messages: string[] = []
  ws.on('message', (data: Buffer) => messages.push(data.toString()))
  await once(ws, 'open')
  t.equal(ws.protocol, 'chat')
  await until(() => messages.length === 2, 'both frames')
  t.same(messages, ['first', 'second'])
  t.match(openLine(gateway.lines), { upgradedBy: 'gateway', engine: 'passthrough', protocol: 'chat' })
  ws.terminate()
})

t.test('frames a client sends with its upgrade request (the upgrade\'s head) are relayed first', async (t) => {
  const { lines, logger } = captureLogs()
  const { gateway } = await startPair(t, {}, undefined, { logger })
  const socket = net.connect(gateway.port, '127.0.0.1')
  t.teardown(() => socket.destroy())
  const key = 'dGhlIHNhbXBsZSBub25jZQ=='
  const headers = Object.entries(authHeaders()).map(([name, value]) => `${name}: ${value}\r\n`).join('')
  const request = `GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${key}\r\n${headers}\r\n`
  const mask = [1, 2, 3, 4]
  const payload = Buffer.from('early').map((byte, i) => byte ^ mask[i % 4])
  socket.write(Buffer.concat([Buffer.from(request), Buffer.from([0x81, 0x80 | payload.length, ...mask]), payload]))
  let received = Buffer.alloc(0)
  socket.on('data', (chunk: Buffer) => { received = Buffer.concat([received, chunk]) })
  await until(() => received.includes(Buffer.from('early')), 'the echo of the early frame')
  const text = received.toString('latin1')
  t.match(text, /^HTTP\/1\.1 101 Switching Protocols\r\n/)
  t.ok(text.includes(`Sec-WebSocket-Accept: ${acceptFor(key)}\r\n`))
  t.match(text, /\r\nx-connection-id: \S+\r\n/)
  const frame = received.subarray(received.indexOf('\r\n\r\n') + 4)
  t.same([...frame], [0x81, 5, ...Buffer.from('early')], 'echoed by the backend, unmasked')
  t.match(openLine(lines), { upgradedBy: 'gateway' })
})

async function tlsBackend (t: TestLike, host: string): Promise<{ url: string, ca: string, names: Array<string | false> }> {
  const { cert, key } = await createCertificate()
  const names: Array<string | false> = []
  const server = https.createServer({ cert, key })
  server.on('secureConnection', (socket: TLSSocket) => names.push(socket.servername ?? false))
  const wss = new WebSocketServer({ server, perMessageDeflate: false })
  wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })))
  server.listen(0, host)
  await once(server, 'listening')
  t.teardown(() => { for (const ws of wss.clients) ws.terminate(); server.close() })
  return { url: `wss://${host === '::1' ? '[::1]' : 'localhost'}:${(server.address() as AddressInfo).port}`, ca: cert, names }
}

for (const host of ['127.0.0.1', '::1']) {
  t.test(`a TLS backend (${host === '::1' ? 'an IPv6 address: no server name' : 'a host name: sent as the server name'}) with its ca`, async (t) => {
    const backend = await tlsBackend(t, host)
    const gateway = await gatewayTo(t, backend.url, { backends: { [BACKEND_ID]: { url: backend.url, ca: backend.ca } } })
    const ws = await connect(gateway.url)
    ws.send('over tls')
    t.equal((await nextMessage(ws)).data.toString(), 'over tls')
    t.same(backend.names, [host === '::1' ? false : 'localhost'])
    t.match(openLine(gateway.lines), { upgradedBy: 'gateway' })
    ws.close()
    await closeOf(ws)
  })
}

t.test('a TLS backend whose certificate is not trusted: 502', async (t) => {
  const backend = await tlsBackend(t, '127.0.0.1')
  const gateway = await gatewayTo(t, backend.url)
  t.equal((await handshake(gateway.port, authHeaders())).status, 502)
})

for (const [url, port] of [['ws://127.0.0.1/x', 80], ['wss://127.0.0.1/x', 443]] as const) {
  t.test(`a backend URL without a port is dialed on the scheme's port (${url})`, async (t) => {
    const gateway = await gatewayTo(t, url)
    t.equal((await handshake(gateway.port, authHeaders())).status, 502)
    const unreachable = gateway.lines.find((line) => line.msg === 'ws gateway backend unreachable') as unknown as { err: { message: string } }
    t.match(unreachable.err.message, new RegExp(`127\\.0\\.0\\.1:${port}\\b`))
  })
}

t.test('the ws path is kept where the raw path cannot go', async (t) => {
  async function pathOf (t: TestLike, options: object, backendOptions: object, headers: Record<string, string> = {}, setup?: (app: Parameters<NonNullable<Parameters<typeof startPair>[4]>>[0]) => Promise<void>): Promise<{ status: number, upgradedBy: unknown }> {
    const { lines, logger } = captureLogs()
    const { gateway } = await startPair(t, options, backendOptions, { logger }, setup)
    const res = await handshake(gateway.port, { ...authHeaders(), ...headers })
    res.socket?.destroy()
    return { status: res.status, upgradedBy: openLine(lines)?.upgradedBy }
  }
  const sharedServer = (options: object) => async (app: Parameters<NonNullable<Parameters<typeof startPair>[4]>>[0]): Promise<void> => { await app.register(fastifyWebsocket, { options }) }
  t.same(await pathOf(t, {}, {}), { status: 101, upgradedBy: 'gateway' }, 'the passthrough engine: the gateway upgrades')
  t.same(await pathOf(t, { engine: 'ws' }, {}), { status: 101, upgradedBy: 'ws' }, 'the ws engine')
  t.same(await pathOf(t, {}, { perMessageDeflate: true }), { status: 101, upgradedBy: 'gateway' }, 'a backend able to deflate, not configured to')
  const deflate = await startPair(t, {}, { perMessageDeflate: true })
  const { lines, logger } = captureLogs()
  const gateway = await startGateway(t, { backends: { [BACKEND_ID]: { url: deflate.backend.url, perMessageDeflate: true } }, jwt: { secret: SECRET } }, { logger })
  const ws = await connect(gateway.url)
  t.match(openLine(lines), { upgradedBy: 'ws' }, 'a backend configured with permessage-deflate')
  ws.terminate()
  const offer = { 'sec-websocket-extensions': 'permessage-deflate' }
  t.same(await pathOf(t, {}, {}, offer, sharedServer({ perMessageDeflate: true })), { status: 101, upgradedBy: 'ws' }, 'a client negotiating permessage-deflate with the app\'s server')
  t.same(await pathOf(t, {}, {}, {}, sharedServer({ perMessageDeflate: true })), { status: 101, upgradedBy: 'gateway' }, 'the app\'s deflating server, a client not offering it')
  t.same(await pathOf(t, {}, {}, offer), { status: 101, upgradedBy: 'gateway' }, 'an offer the gateway\'s own server ignores')
  t.same(await pathOf(t, {}, {}, {}, sharedServer({ verifyClient: () => true })), { status: 101, upgradedBy: 'ws' }, 'the app\'s server with verifyClient')
  const { gateway: plain } = await startPair(t)
  for (const list of ['chat, chat', 'chat,']) {
    const req = http.request({ host: '127.0.0.1', port: plain.port, path: '/ws', agent: false, headers: { ...authHeaders(), connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': 'dGhlIHNhbXBsZSBub25jZQ==', 'sec-websocket-protocol': list } }).end()
    const [res] = await once(req, 'response') as [http.IncomingMessage]
    res.resume()
    t.equal(res.statusCode, 400, `a subprotocol list ws refuses (${JSON.stringify(list)}): ws's 400 as before`)
  }
})

t.test('a request @fastify/websocket kept no head for goes through ws', async (t) => {
  const opts = { engine: 'passthrough' } as Parameters<typeof takesRawSockets>[3]
  const backend = { perMessageDeflate: false } as Parameters<typeof takesRawSockets>[4]
  const wss = { options: { perMessageDeflate: false } } as unknown as WebSocketServer
  const socket = new net.Socket()
  const request = (raw: object): Parameters<typeof takesRawSockets>[0] => ({ headers: {}, raw }) as unknown as Parameters<typeof takesRawSockets>[0]
  const head = Buffer.from('x')
  t.equal(takesRawSockets(request({}), socket, wss, opts, backend), undefined)
  t.equal(takesRawSockets(request({ [Symbol('ws-head')]: 'not bytes' }), socket, wss, opts, backend), undefined)
  t.equal(takesRawSockets(request({ [Symbol('ws-head')]: head }), socket, wss, opts, backend), head)
  const listed = (list: string): Parameters<typeof takesRawSockets>[0] => ({ headers: { 'sec-websocket-protocol': list }, raw: { [Symbol('ws-head')]: head } }) as unknown as Parameters<typeof takesRawSockets>[0]
  t.equal(takesRawSockets(listed('chat,\tsuperchat'), socket, wss, opts, backend), head, 'a list ws parses')
  t.equal(takesRawSockets(listed('chat, chat'), socket, wss, opts, backend), undefined, 'a repeated protocol: left to ws')
  t.equal(takesRawSockets(listed('chat;'), socket, wss, opts, backend), undefined, 'a malformed list: left to ws')
})

t.test('an answer head split across reads, and the bytes after it', async (t) => {
  const reader = new AnswerReader()
  const answer = 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nX-Two: a\r\nx-two: b\r\n\r\nrest'
  const chunks = [answer.slice(0, 10), answer.slice(10, answer.indexOf('\r\n\r\n') + 2), answer.slice(answer.indexOf('\r\n\r\n') + 2)]
  t.equal(reader.feed(Buffer.from(chunks[0])), undefined)
  t.equal(reader.feed(Buffer.from(chunks[1])), undefined)
  const done = reader.feed(Buffer.from(chunks[2]))
  t.equal(done?.status, 101)
  t.equal(done?.headers.get('x-two'), 'a, b')
  t.equal(done?.rest.toString(), 'rest')
})

t.test('the app\'s preHandler hooks run before the gateway upgrades; a client gone by then is let go', async (t) => {
  const backend = await rawBackend(t, (s, key) => s.write(switching(key)))
  const closed = backend.closed()
  const seen: string[] = []
  const { lines, logger } = captureLogs()
  const gateway = await startGateway(t, { backends: { [BACKEND_ID]: backend.url }, jwt: { secret: SECRET } }, { logger }, (app) => {
    app.addHook('preHandler', async (request) => {
      seen.push(request.url)
      request.raw.socket.destroy()
    })
  })
  await t.rejects(handshake(gateway.port, authHeaders()))
  await closed
  t.same(seen, ['/ws'])
  t.equal(openLine(lines), undefined, 'never relayed')
})

t.test('a shutdown begun before the gateway upgrades: 503', async (t) => {
  const backend = await rawBackend(t, (s, key) => s.write(switching(key)))
  const app = Fastify()
  await app.register(wsGateway, { backends: { [BACKEND_ID]: backend.url }, jwt: { secret: SECRET } })
  app.addHook('preHandler', async () => {
    app.close().catch(() => {})
    // The gateway's shutdown (a preClose hook) has begun once the server stops listening.
    await until(() => !app.server.listening, 'the close begun')
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  t.teardown(() => app.close())
  const res = await handshake((app.server.address() as AddressInfo).port, authHeaders())
  t.equal(res.status, 503)
})
