/*
 * Message mode in the sample: the gateway's /api route reads each JSON message, routes it by its
 * `action` and answers it — through an HTTP backend (chat.send), a WebSocket stream backend
 * (prices.watch) and, when redis-server is installed, a queue worker on Redis Streams
 * (report.build). The same app relays frames at /ws.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { on, once } from 'node:events'
import http from 'node:http'
import net, { type AddressInfo } from 'node:net'
import { Redis } from 'ioredis'
import WebSocket, { WebSocketServer } from 'ws'
import { createQueueWorker, type MessagesOptions, type QueueWorker } from '../lib/index'
import type { Write } from './config'

/** Where the message-mode backends of the sample are. */
export interface MessageBackends {
  /** The HTTP service behind `chat.send` and the `connect` hook. */
  httpUrl: string
  /** The WebSocket price stream behind `prices.watch`. */
  wsUrl: string
  /** The Redis of the queue route, when redis-server is installed. */
  redisUrl?: string
  close: () => Promise<void>
}

/** The chat service: answers `POST /chat` with what it stored, `POST /connect` with 204. */
async function startChatService (host: string): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    let body = ''
    req.on('data', (chunk: Buffer) => { body += chunk.toString() })
    req.on('end', () => {
      if (req.url === '/connect') return res.writeHead(204).end()
      const { text } = JSON.parse(body) as { text: string }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ stored: text, by: req.headers['x-user-sub'] }))
    })
  })
  server.listen(0, host)
  await once(server, 'listening')
  return server
}

/** The price stream: three ticks for each symbol a client asks to watch. */
async function startPriceStream (host: string): Promise<WebSocketServer> {
  const wss = new WebSocketServer({ host, port: 0 })
  wss.on('connection', (ws) => {
    ws.on('error', () => {})
    ws.on('message', (data) => {
      const { symbol } = JSON.parse(data.toString()) as { symbol: string }
      for (const price of [101.5, 101.75, 101.25]) ws.send(JSON.stringify({ symbol, price }))
    })
  })
  await once(wss, 'listening')
  return wss
}

/** A redis-server of the sample's own on a free port, or undefined when none is installed. */
async function startRedis (host: string, command: string): Promise<{ url: string, child: ChildProcess } | undefined> {
  const probe = net.createServer().listen(0, host)
  await once(probe, 'listening')
  const { port } = probe.address() as AddressInfo
  await new Promise((resolve) => probe.close(resolve))
  const child = spawn(command, ['--port', String(port), '--bind', host, '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
  const started = await new Promise<boolean>((resolve) => {
    child.once('spawn', () => resolve(true))
    child.once('error', () => resolve(false))
  })
  if (!started) return undefined
  const url = `redis://${host}:${port}`
  // Ready once it answers: retried every 50 ms for two seconds while it starts.
  const redis = new Redis(url, { retryStrategy: (times) => (times > 40 ? null : 50) })
  redis.on('error', () => {})
  const ready = await new Promise<boolean>((resolve) => {
    redis.once('ready', () => resolve(true))
    redis.once('end', () => resolve(false))
  })
  redis.disconnect()
  if (!ready) {
    child.kill('SIGKILL')
    throw new Error(`${command} did not start`)
  }
  return { url, child }
}

/**
 * Starts the chat service, the price stream and, if `redisServer` (default `redis-server`) is
 * installed, Redis with a report worker.
 */
export async function startMessageBackends (host: string, redisServer = 'redis-server'): Promise<MessageBackends> {
  const redis = await startRedis(host, redisServer)
  const chat = await startChatService(host)
  const prices = await startPriceStream(host)
  let worker: QueueWorker | undefined
  let workerRedis: Redis | undefined
  if (redis !== undefined) {
    workerRedis = new Redis(redis.url)
    workerRedis.on('error', () => {})
    // The worker a backend team writes: five lines, in any process that reaches the Redis.
    worker = createQueueWorker({
      redis: workerRedis,
      stream: 'jobs:report',
      group: 'reports',
      handler: async ({ message, sub }) => ({ report: `${(message as { year: number }).year} for ${String(sub)}`, pages: 3 })
    })
    await worker.ready
  }
  return {
    httpUrl: `http://${host}:${(chat.address() as AddressInfo).port}`,
    wsUrl: `ws://${host}:${(prices.address() as AddressInfo).port}`,
    redisUrl: redis?.url,
    close: async () => {
      await worker?.close()
      workerRedis?.disconnect()
      redis?.child.kill('SIGKILL')
      for (const ws of prices.clients) ws.terminate()
      await new Promise((resolve) => prices.close(resolve))
      chat.closeAllConnections()
      await new Promise((resolve) => chat.close(resolve))
    }
  }
}

/** The `messages` option of the sample's /api route (see the README's "Message mode"). */
export function messageOptions (backends: MessageBackends): MessagesOptions {
  return {
    routeKey: 'action',
    correlationId: 'id',
    maxInFlight: 16,
    timeout: 5_000,
    connect: { http: `${backends.httpUrl}/connect` },
    routes: {
      'chat.send': {
        http: `${backends.httpUrl}/chat`,
        schema: { type: 'object', required: ['text'], properties: { text: { type: 'string', minLength: 1, maxLength: 200 } } },
        rateLimit: { messagesPerSecond: 20 },
        circuitBreaker: { failures: 5, resetAfter: 10_000 }
      },
      'prices.watch': { ws: backends.wsUrl },
      ...(backends.redisUrl === undefined ? {} : { 'report.build': { queue: { stream: 'jobs:report', replyTimeout: 5_000 } } })
    }
  }
}

/** Sends one message and prints it and the frames it brings, `count` of them (5 s at most). */
async function exchange (ws: WebSocket, message: unknown, count: number, write: Write): Promise<unknown[]> {
  const frames: unknown[] = []
  // `on` queues what arrives between two reads: a burst of frames is not lost.
  const incoming = on(ws, 'message', { signal: AbortSignal.timeout(5_000) })
  write(`  → ${JSON.stringify(message)}\n`)
  ws.send(JSON.stringify(message))
  for await (const [data] of incoming) {
    frames.push(JSON.parse((data as Buffer).toString()))
    write(`  ← ${(data as Buffer).toString()}\n`)
    if (frames.length === count) break
  }
  return frames
}

/**
 * The client's message-mode story: a reply from the HTTP backend, two error frames (the socket
 * stays open), a WebSocket stream, and the queue — or a line saying it was skipped.
 */
export async function runMessageClient (options: { url: string, ca: string, token: string, queue: boolean, write: Write }): Promise<unknown[]> {
  const { write } = options
  write(`\nmessage mode at ${options.url}\n`)
  const ws = new WebSocket(options.url, { headers: { authorization: `Bearer ${options.token}` }, ca: options.ca })
  await once(ws, 'open')
  const frames = [
    ...await exchange(ws, { action: 'chat.send', id: 'm1', text: 'hello' }, 1, write),
    ...await exchange(ws, { action: 'chat.send', id: 'm2' }, 1, write),
    ...await exchange(ws, { action: 'nope', id: 'm3' }, 1, write),
    ...await exchange(ws, { action: 'prices.watch', symbol: 'ACME' }, 3, write)
  ]
  if (options.queue) frames.push(...await exchange(ws, { action: 'report.build', id: 'm5', year: 2026 }, 1, write))
  else write('  (skipped the queue route report.build: redis-server is not installed)\n')
  ws.close(1000)
  await once(ws, 'close')
  return frames
}
