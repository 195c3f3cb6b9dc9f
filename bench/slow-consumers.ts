/**
 * The memory figure of the hardening issue: peak gateway RSS with 100 clients that never read
 * while their backends keep sending (up to 50 MB each), against the bound of
 * 2 × highWaterMark × connections above the idle baseline.
 *
 *   node --import tsx bench/slow-consumers.ts [--connections 100] [--mb 50] [--seconds 5] [--engine passthrough|ws]
 *
 * The gateway runs in a child process of its own (so its RSS is only the gateway's), with the
 * default options except `slowConsumerTimeout: 0`, so nothing is closed while memory is watched.
 * The backend writes whenever its own buffer is under 1 MiB, which is how a well-behaved server
 * meets back-pressure; clients are paused and never read. Everything is on 127.0.0.1, bounded in
 * time, and the child is stopped by PID at the end.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { parseArgs } from 'node:util'
import WebSocket, { WebSocketServer } from 'ws'
import Fastify from 'fastify'
import { createSigner } from 'fast-jwt'
import wsGateway from '../lib/index'

const SECRET = 'slow-consumer-bench-secret'
const CHUNK = Buffer.alloc(256 * 1024, 7)

async function gatewayChild (backendUrl: string, engine: 'passthrough' | 'ws'): Promise<void> {
  const app = Fastify()
  await app.register(wsGateway, { backends: { Backend_BENCH: backendUrl }, jwt: { secret: SECRET }, slowConsumerTimeout: 0, engine })
  await app.listen({ host: '127.0.0.1', port: 0 })
  process.on('message', () => {
    (globalThis as { gc?: () => void }).gc?.()
    process.send?.({ rss: process.memoryUsage().rss, open: app.wsGateway.stats().open })
  })
  process.on('disconnect', () => process.exit(0))
  process.send?.({ port: (app.server.address() as AddressInfo).port })
}

async function ask (child: ChildProcess): Promise<{ rss: number, open: number }> {
  child.send('rss')
  return (await once(child, 'message'))[0] as { rss: number, open: number }
}

async function main (): Promise<void> {
  const { values } = parseArgs({ options: { connections: { type: 'string', default: '100' }, mb: { type: 'string', default: '50' }, seconds: { type: 'string', default: '5' }, engine: { type: 'string', default: 'passthrough' } } })
  const connections = Number(values.connections)
  const perConnection = Number(values.mb) * 1024 * 1024
  const seconds = Number(values.seconds)
  const highWaterMark = 1024 * 1024

  const backend = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false })
  await once(backend, 'listening')
  const backendSockets: WebSocket[] = []
  backend.on('connection', (ws) => { backendSockets.push(ws); ws.on('error', () => {}) })

  const child = fork(__filename, ['gateway', `ws://127.0.0.1:${(backend.address() as AddressInfo).port}`, values.engine], {
    execArgv: ['--import', 'tsx', '--expose-gc'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc']
  })
  try {
    const { port } = (await once(child, 'message'))[0] as { port: number }
    const token = createSigner({ key: SECRET, expiresIn: 600_000 })({ sub: 'bench' })
    const clients = await Promise.all(Array.from({ length: connections }, async () => {
      const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, { headers: { authorization: `Bearer ${token}`, id: 'Backend_BENCH' }, perMessageDeflate: false })
      await once(ws, 'open')
      ws.pause()
      return ws
    }))
    const baseline = await ask(child)
    process.stderr.write(`${connections} paused clients open; gateway RSS baseline ${(baseline.rss / 2 ** 20).toFixed(1)} MiB\n`)

    // Every backend socket writes while its own buffer is under 1 MiB, up to its share.
    const sent = new Array<number>(backendSockets.length).fill(0)
    const pump = setInterval(() => {
      backendSockets.forEach((ws, i) => {
        while (sent[i] < perConnection && ws.bufferedAmount < highWaterMark && ws.readyState === WebSocket.OPEN) {
          ws.send(CHUNK)
          sent[i] += CHUNK.length
        }
      })
    }, 5)
    let peak = baseline.rss
    const deadline = Date.now() + seconds * 1000
    while (Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 200))
      peak = Math.max(peak, (await ask(child)).rss)
    }
    clearInterval(pump)
    const delivered = sent.reduce((a, b) => a + b, 0) - backendSockets.reduce((a, ws) => a + ws.bufferedAmount, 0)
    const bound = 2 * highWaterMark * connections
    const above = peak - baseline.rss
    const result = {
      engine: values.engine,
      connections,
      mbPerConnection: Number(values.mb),
      baselineMiB: +(baseline.rss / 2 ** 20).toFixed(1),
      peakMiB: +(peak / 2 ** 20).toFixed(1),
      aboveBaselineMiB: +(above / 2 ** 20).toFixed(1),
      boundMiB: bound / 2 ** 20,
      withinBound: above <= bound,
      bytesLeftBackendsMiB: +(delivered / 2 ** 20).toFixed(1)
    }
    process.stdout.write(`${JSON.stringify(result, null, 2)}\n`)
    for (const ws of clients) ws.terminate()
  } finally {
    child.kill()
    for (const ws of backendSockets) ws.terminate()
    backend.close()
  }
}

const run = process.argv[2] === 'gateway' ? gatewayChild(process.argv[3], process.argv[4] as 'passthrough' | 'ws') : main()
run.catch((err: unknown) => { process.stderr.write(`${String(err)}\n`); process.exit(1) })
