/**
 * The ping-flood figure of issue 12 §1: a victim's echo round trips while N clients flood the
 * gateway with empty pings and never read, next to the same victim with no flood, per engine.
 *
 *   npm run bench:ping-flood [-- --flooders 10 --seconds 5 --engines passthrough,ws] [--quick]
 *
 * Three scenarios per engine: no flood; N flooders against the default options, whose rate limit
 * closes each 1008 within its first 10,000 pings (they keep sending regardless, as an attacker
 * would, and the gateway keeps reading them until its close timeout); and N flooders with
 * `rateLimit: false`, where only the one-pong-at-a-time rule bounds what they cost. The gateway
 * (this repository's lib/, through tsx) and the echo backend run in child processes of their
 * own, the victim and the flooders here. Everything is on 127.0.0.1 and bounded in time; every
 * child is stopped by its PID at the end.
 */
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import http from 'node:http'
import type { Socket } from 'node:net'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import WebSocket from 'ws'
import { forkTs, stop, stopAll, waitReady } from './children.js'
import { randomSecret, signHs256 } from './jwt.js'
import { percentile } from './stats.js'

const ROOT = join(__dirname, '..')
const PAYLOAD = Buffer.alloc(64, 'x')
/** 64 KiB of empty masked pings (6 bytes each), written over and over by every flooder. */
const PINGS = Buffer.concat(Array.from({ length: Math.floor(65536 / 6) }, () => Buffer.from([0x89, 0x80, ...randomBytes(4)])))

interface Scenario { name: string, flooders: number, options: Record<string, unknown> }

interface Result {
  engine: string
  scenario: string
  flooders: number
  echoes: number
  p50Ms: number
  p99Ms: number
  maxMs: number
  /** What the flooders got written into the gateway's socket buffers, in MiB. */
  floodMiB: number
  /** Connections the flooders opened (one each, plus one per reconnect after being cut). */
  floodConnections: number
}

/** What one flooder did: bytes of pings written, and connections opened (it reconnects when cut). */
interface Flood { sent: number, connections: number }

/** Opens a raw WebSocket connection through the gateway: the socket after its 101. */
async function upgrade (port: number, headers: Record<string, string>): Promise<Socket> {
  const req = http.request({
    host: '127.0.0.1',
    port,
    path: '/ws',
    agent: false,
    headers: { connection: 'Upgrade', upgrade: 'websocket', 'sec-websocket-version': '13', 'sec-websocket-key': randomBytes(16).toString('base64'), ...headers }
  })
  req.end()
  const [, socket] = await once(req, 'upgrade') as [http.IncomingMessage, Socket]
  return socket
}

/**
 * A client that writes pings as fast as the gateway reads them and reads nothing; when the gateway
 * cuts it, it connects again, until `phase.stopped`.
 */
async function flooder (port: number, headers: Record<string, string>, phase: { stopped: boolean }): Promise<Flood> {
  const flood: Flood = { sent: 0, connections: 0 }
  while (!phase.stopped) {
    const socket = await upgrade(port, headers)
    flood.connections++
    socket.pause()
    socket.on('error', () => {})
    // Plain listeners rather than `once()`, whose promises reject on the socket's 'error'.
    const closed = new Promise((resolve) => socket.once('close', resolve))
    while (!phase.stopped && !socket.destroyed) {
      flood.sent += PINGS.length
      if (!socket.write(PINGS)) await Promise.race([new Promise((resolve) => socket.once('drain', resolve)), closed])
    }
    socket.destroy()
  }
  return flood
}

/** Echo round trips of one 64-byte message at a time, 10 ms apart, until `until.stopped`. */
async function victim (url: string, headers: Record<string, string>, until: { stopped: boolean, measuring: boolean }): Promise<number[]> {
  const ws = new WebSocket(url, { headers, perMessageDeflate: false })
  await once(ws, 'open')
  const closed = once(ws, 'close').then(([code]) => { throw new Error(`the victim was closed with ${String(code)}`) })
  const samples: number[] = []
  while (!until.stopped) {
    const sent = performance.now()
    ws.send(PAYLOAD)
    const [data] = await Promise.race([once(ws, 'message'), closed]) as [Buffer]
    if (data.length !== PAYLOAD.length) throw new Error(`echo of ${data.length} bytes`)
    if (until.measuring) samples.push(performance.now() - sent)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  ws.close()
  return samples
}

async function measure (engine: string, scenario: Scenario, seconds: number): Promise<Result> {
  const backend = forkTs('backend', join(ROOT, 'bench/backend.ts'), [], ROOT)
  const backendPort = await waitReady(backend)
  const secret = randomSecret()
  const gateway = forkTs('gateway', join(ROOT, 'bench/peers/gateway.ts'),
    [join(ROOT, 'lib/index.ts'), `ws://127.0.0.1:${backendPort}`, secret, JSON.stringify({ engine, ...scenario.options })], ROOT)
  try {
    const port = await waitReady(gateway)
    const headers = { authorization: `Bearer ${signHs256(secret, 'bench', 600)}`, id: 'Backend_BENCH' }
    const phase = { stopped: false, measuring: false }
    const samples = victim(`ws://127.0.0.1:${port}/ws`, headers, phase)
    const flooding = Promise.all(Array.from({ length: scenario.flooders }, async () => await flooder(port, headers, phase)))
    await new Promise((resolve) => setTimeout(resolve, 500))
    phase.measuring = true
    await new Promise((resolve) => setTimeout(resolve, seconds * 1000))
    phase.stopped = true
    const sorted = Float64Array.from(await samples).sort()
    const flooders = await flooding
    return {
      engine,
      scenario: scenario.name,
      flooders: scenario.flooders,
      echoes: sorted.length,
      p50Ms: +percentile(sorted, 0.5).toFixed(2),
      p99Ms: +percentile(sorted, 0.99).toFixed(2),
      maxMs: +(sorted[sorted.length - 1] ?? Number.NaN).toFixed(2),
      floodMiB: +(flooders.reduce((sum, f) => sum + f.sent, 0) / 2 ** 20).toFixed(0),
      floodConnections: flooders.reduce((sum, f) => sum + f.connections, 0)
    }
  } finally {
    await stop(gateway)
    await stop(backend)
  }
}

async function main (): Promise<void> {
  const { values } = parseArgs({
    options: {
      flooders: { type: 'string', default: '10' },
      seconds: { type: 'string', default: '5' },
      engines: { type: 'string', default: 'passthrough,ws' },
      quick: { type: 'boolean', default: false }
    }
  })
  const flooders = values.quick ? 2 : Number(values.flooders)
  const seconds = values.quick ? 1 : Number(values.seconds)
  const scenarios: Scenario[] = [
    { name: 'no flood', flooders: 0, options: {} },
    { name: 'flood, default options', flooders, options: {} },
    { name: 'flood, rateLimit: false', flooders, options: { rateLimit: false } }
  ]
  const results: Result[] = []
  for (const engine of values.engines.split(',')) {
    for (const scenario of scenarios) {
      const result = await measure(engine, scenario, seconds)
      process.stderr.write(`${engine}, ${scenario.name}: ${result.echoes} echoes, p99 ${result.p99Ms} ms\n`)
      results.push(result)
    }
  }
  process.stdout.write('| engine | scenario | victim echoes | p50 ms | p99 ms | max ms | flood MiB sent | flood connections |\n|---|---|---|---|---|---|---|---|\n')
  for (const r of results) {
    process.stdout.write(`| ${r.engine} | ${r.scenario}${r.flooders > 0 ? ` (${r.flooders} clients)` : ''} | ${r.echoes} | ${r.p50Ms} | ${r.p99Ms} | ${r.maxMs} | ${r.floodMiB} | ${r.floodConnections} |\n`)
  }
  process.stdout.write(`\n${JSON.stringify(results)}\n`)
}

main().catch(async (err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack ?? err.message : String(err)}\n`)
  await stopAll()
  process.exit(1)
})
