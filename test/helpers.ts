import { spawn } from 'node:child_process'
import { createHmac, createSign, randomBytes, type KeyObject } from 'node:crypto'
import { once } from 'node:events'
import http from 'node:http'
import net, { type AddressInfo } from 'node:net'
import { Writable } from 'node:stream'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import WebSocket, { WebSocketServer, type ServerOptions } from 'ws'
import wsGateway, { type WsGatewayOptions } from '../lib/index'

/** The shape of a tap test object as far as these helpers need it. */
export interface TestLike {
  teardown: (fn: () => unknown) => void
}

export const SECRET = 'a-test-secret-that-is-long-enough-for-hs256'
export const BACKEND_ID = 'Backend_ABC'

function base64url (value: Buffer | string): string {
  return Buffer.from(value).toString('base64url')
}

export interface SignOptions {
  alg?: string
  key?: string | KeyObject
  /** Seconds from now; `null` leaves `exp` out. Default 60. */
  expiresIn?: number | null
}

/** Signs a JWT by hand, so tests can also make the broken ones a library would refuse to make. */
export function sign (claims: Record<string, unknown> = {}, { alg = 'HS256', key = SECRET, expiresIn = 60 }: SignOptions = {}): string {
  const now = Math.floor(Date.now() / 1000)
  const payload = { sub: 'user-1', iat: now, ...(expiresIn === null ? {} : { exp: now + expiresIn }), ...claims }
  const data = `${base64url(JSON.stringify({ alg, typ: 'JWT' }))}.${base64url(JSON.stringify(payload))}`
  if (alg === 'none') return `${data}.`
  const signature = alg.startsWith('HS')
    ? createHmac(`sha${alg.slice(2)}`, key as string).update(data).digest()
    : createSign(`sha${alg.slice(2)}`).update(data).sign(key as KeyObject)
  return `${data}.${base64url(signature)}`
}

/** One JSON log line. */
export interface LogLine { msg: string, level: number, [key: string]: unknown }

/** A Fastify `logger` option that keeps every line in `lines`, for tests that assert what is logged. */
export function captureLogs (level = 'info'): { lines: LogLine[], logger: { stream: Writable, level: string } } {
  const lines: LogLine[] = []
  const stream = new Writable({ write (chunk, _enc, done) { lines.push(JSON.parse(chunk.toString())); done() } })
  return { lines, logger: { stream, level } }
}

export interface Backend {
  url: string
  wss: WebSocketServer
  /** The server side of each connection, in order of arrival. */
  sockets: WebSocket[]
  /** The handshake request of each connection, in order of arrival. */
  requests: http.IncomingMessage[]
  nextConnection: () => Promise<WebSocket>
}

/**
 * A real ws backend on 127.0.0.1 that echoes every message with its binary flag, unless the test
 * gives its own `onConnection`.
 */
export async function startBackend (t: TestLike, options: ServerOptions & { onConnection?: (ws: WebSocket, req: http.IncomingMessage) => void } = {}): Promise<Backend> {
  const { onConnection, ...serverOptions } = options
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, ...serverOptions })
  await once(wss, 'listening')
  const backend: Backend = {
    url: `ws://127.0.0.1:${(wss.address() as AddressInfo).port}`,
    wss,
    sockets: [],
    requests: [],
    nextConnection: async () => (await once(wss, 'connection'))[0] as WebSocket
  }
  wss.on('connection', (ws, req) => {
    backend.sockets.push(ws)
    backend.requests.push(req)
    ws.on('error', () => {})
    if (onConnection !== undefined) onConnection(ws, req)
    else ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }))
  })
  t.teardown(async () => {
    for (const ws of wss.clients) ws.terminate()
    await new Promise((resolve) => wss.close(resolve))
  })
  return backend
}

/** A port with nothing listening on it. */
export async function deadPort (): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}

export interface Gateway {
  app: FastifyInstance
  url: string
  port: number
}

/** A Fastify app with the gateway registered, listening on 127.0.0.1; closed at teardown. */
export async function startGateway (t: TestLike, options: WsGatewayOptions, fastifyOptions: FastifyServerOptions = {}, setup?: (app: FastifyInstance) => Promise<void> | void): Promise<Gateway> {
  const app = Fastify(fastifyOptions)
  t.teardown(() => app.close())
  if (setup !== undefined) await setup(app)
  await app.register(wsGateway, options)
  await app.listen({ host: '127.0.0.1', port: 0 })
  const port = (app.server.address() as AddressInfo).port
  return { app, url: `ws://127.0.0.1:${port}${options.path ?? '/ws'}`, port }
}

/** A gateway in front of one echo backend under BACKEND_ID, with HS256 auth (the rest as for `startGateway`). */
export async function startPair (t: TestLike, options: Partial<WsGatewayOptions> = {}, backendOptions?: Parameters<typeof startBackend>[1], fastifyOptions?: FastifyServerOptions, setup?: (app: FastifyInstance) => Promise<void> | void): Promise<{ backend: Backend, gateway: Gateway }> {
  const backend = await startBackend(t, backendOptions)
  const gateway = await startGateway(t, { backends: { [BACKEND_ID]: backend.url }, jwt: { secret: SECRET }, heartbeatInterval: 0, ...options }, fastifyOptions, setup)
  return { backend, gateway }
}

/** The headers of a well-formed gateway request. */
export function authHeaders (extra: Record<string, string> = {}): Record<string, string> {
  return { authorization: `Bearer ${sign()}`, id: BACKEND_ID, ...extra }
}

/** A ws client (no compression offered) that is open, or rejects with the handshake's status. */
export async function connect (url: string, headers: Record<string, string> = authHeaders(), protocols: string[] = []): Promise<WebSocket> {
  const ws = new WebSocket(url, protocols, { headers, perMessageDeflate: false })
  await new Promise<void>((resolve, reject) => {
    ws.once('open', resolve)
    ws.once('error', reject)
    ws.once('unexpected-response', (_req, res) => {
      res.resume()
      reject(new Error(`status ${res.statusCode}`))
    })
  })
  return ws
}

export interface HandshakeAnswer {
  status: number
  headers: http.IncomingHttpHeaders
  body: Record<string, unknown>
  socket?: import('node:net').Socket
}

/**
 * Sends a raw upgrade request (so tests can send what a ws client never would) and returns the
 * HTTP answer; on 101 the socket is returned for the test to use or destroy.
 */
export async function handshake (port: number, headers: Record<string, string | string[]>, path = '/ws', method = 'GET'): Promise<HandshakeAnswer> {
  const req = http.request({
    host: '127.0.0.1',
    port,
    path,
    method,
    agent: false,
    headers: {
      connection: 'Upgrade',
      upgrade: 'websocket',
      'sec-websocket-version': '13',
      'sec-websocket-key': randomBytes(16).toString('base64'),
      ...headers
    }
  })
  req.end()
  return await new Promise((resolve, reject) => {
    req.once('error', reject)
    req.once('upgrade', (res, socket) => resolve({ status: res.statusCode as number, headers: res.headers, body: {}, socket }))
    req.once('response', async (res) => {
      let text = ''
      for await (const chunk of res) text += chunk
      resolve({ status: res.statusCode as number, headers: res.headers, body: text === '' ? {} : JSON.parse(text) })
    })
  })
}

/** Resolves with the next message on a socket, as text or Buffer per its type. */
export async function nextMessage (ws: WebSocket): Promise<{ data: Buffer, isBinary: boolean }> {
  const [data, isBinary] = await once(ws, 'message') as [Buffer, boolean]
  return { data, isBinary }
}

/** Resolves with the close code and reason a socket ends with. */
export async function closeOf (ws: WebSocket): Promise<{ code: number, reason: string }> {
  if (ws.readyState === WebSocket.CLOSED) throw new Error('socket already closed')
  const [code, reason] = await once(ws, 'close') as [number, Buffer]
  return { code, reason: reason.toString() }
}

/** A connected client and the connection id the gateway announced in its 101 (`x-connection-id`). */
export async function connectWithId (url: string, headers: Record<string, string> = authHeaders()): Promise<{ ws: WebSocket, id: string }> {
  const ws = new WebSocket(url, { headers, perMessageDeflate: false })
  const [response] = await Promise.all([
    once(ws, 'upgrade') as Promise<[http.IncomingMessage]>,
    once(ws, 'open')
  ])
  return { ws, id: response[0].headers['x-connection-id'] as string }
}

/** The headers of a gateway request whose token has this `sub`. */
export function headersFor (sub: string, extra: Record<string, string> = {}): Record<string, string> {
  return authHeaders({ authorization: `Bearer ${sign({ sub })}`, ...extra })
}

/** Waits until `check` holds (what crosses sockets or Redis settles a little later); fails after `ms`. */
export async function until (check: () => boolean | Promise<boolean>, what: string, ms = 5000): Promise<void> {
  const end = Date.now() + ms
  while (Date.now() < end) {
    if (await Promise.resolve().then(check).catch(() => false)) return
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  throw new Error(`timed out waiting for ${what}`)
}

/** Runs a bench script (`node --import tsx …`) to its end: its exit code and stdout. */
export async function runBench (t: TestLike, args: string[]): Promise<{ code: number, stdout: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', ...args], {
    // Coverage of the children would be collected under another compiler and mislabel lines.
    env: { ...process.env, _TAPJS_PROCESSINFO_COVERAGE_: '0' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  t.teardown(() => { if (child.exitCode === null) child.kill() })
  let stdout = ''
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  child.stderr.resume()
  const [code] = await once(child, 'exit') as [number]
  return { code, stdout }
}

/** What a test HTTP backend saw of one request. */
export interface SeenRequest {
  method: string
  url: string
  headers: http.IncomingHttpHeaders
  body: string
  /** Resolves when the gateway closed this request's connection before the answer (an abort). */
  aborted: Promise<void>
}

export interface HttpBackend {
  url: string
  server: http.Server
  requests: SeenRequest[]
}

/**
 * A real HTTP backend on 127.0.0.1: `handler` answers each request (the default echoes the body
 * as JSON with status 200). It sees every request as it came, and each request's abort.
 */
export async function startHttpBackend (t: TestLike, handler?: (seen: SeenRequest, res: http.ServerResponse) => void): Promise<HttpBackend> {
  const requests: SeenRequest[] = []
  const server = http.createServer((req, res) => {
    let body = ''
    req.setEncoding('utf8')
    req.on('data', (chunk: string) => { body += chunk })
    req.on('end', () => {
      const aborted = new Promise<void>((resolve) => res.once('close', () => { if (!res.writableFinished) resolve() }))
      const seen = { method: req.method as string, url: req.url as string, headers: req.headers, body, aborted }
      requests.push(seen)
      if (handler !== undefined) return handler(seen, res)
      res.writeHead(200, { 'content-type': 'application/json' }).end(body)
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(async () => {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, server, requests }
}

/** A message-mode gateway (HS256 auth, no heartbeat) at `/api`. */
export async function startMessageGateway (t: TestLike, messages: NonNullable<WsGatewayOptions['messages']>, options: Partial<WsGatewayOptions> = {}, fastifyOptions: FastifyServerOptions = {}, setup?: (app: FastifyInstance) => Promise<void> | void): Promise<Gateway> {
  return await startGateway(t, { path: '/api', jwt: { secret: SECRET }, heartbeatInterval: 0, messages, ...options }, fastifyOptions, setup)
}

/** A frame of message mode, parsed. */
export type Frame = Record<string, unknown>

/** Resolves with the next frame on a message-mode socket, parsed. */
export async function nextFrame (ws: WebSocket): Promise<Frame> {
  const { data } = await nextMessage(ws)
  return JSON.parse(data.toString())
}

/** Sends one message (an object as JSON, a string as it is) and resolves with the next frame. */
export async function ask (ws: WebSocket, message: unknown): Promise<Frame> {
  const frame = nextFrame(ws)
  ws.send(typeof message === 'string' ? message : JSON.stringify(message))
  return await frame
}

/** Resolves with the next `count` frames, parsed. */
export async function frames (ws: WebSocket, count: number): Promise<Frame[]> {
  const got: Frame[] = []
  return await new Promise((resolve) => {
    const onMessage = (data: Buffer): void => {
      got.push(JSON.parse(data.toString()))
      if (got.length < count) return
      ws.removeListener('message', onMessage)
      resolve(got)
    }
    ws.on('message', onMessage)
  })
}

/** The headers of a message-mode client: only the token. */
export function tokenHeaders (claims: Record<string, unknown> = {}): Record<string, string> {
  return { authorization: `Bearer ${sign(claims)}` }
}
