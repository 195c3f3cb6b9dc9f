/**
 * The ping-flood figure of issue 12 §1: a victim's echo round trips while N clients flood the
 * gateway with empty pings and never read, next to the same victim with no flood, per engine.
 *
 *   npm run bench:ping-flood [-- --flooders 10 --seconds 5 --engines passthrough,ws] [--quick]
 *
 * Scenarios per engine: no flood; N flooders sending 4 MiB of empty pings each (the attack of the
 * issue), against the default options — whose rate limit closes each 1008 within its first 10,000
 * pings and cuts it when it keeps on — and with `rateLimit: false`, where only the one-pong-at-a-
 * time rule bounds what they cost; and N flooders that never stop, connecting again whenever they
 * are cut (a sustained attack, default options). The gateway (this repository's lib/, through
 * tsx), the echo backend and the flooders run in child processes of their own, the victim here,
 * so that neither the flooders' writes nor the backend delay the victim's own event loop. The
 * gateway's CPU time during the window is read from /proc: unlike latencies, it does not depend
 * on what else runs on the machine. Everything is on 127.0.0.1 and bounded in time; every child
 * is stopped by its PID at the end.
 */
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import http from 'node:http'
import type { Socket } from 'node:net'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import WebSocket from 'ws'
import { forkTs, nextMessage, stop, stopAll, waitReady } from './children.js'
import { randomSecret, signHs256 } from './jwt.js'
import { processCpuSeconds } from './proc.js'
import { percentile } from './stats.js'

const ROOT = join(__dirname, '..')
const PAYLOAD = Buffer.alloc(64, 'x')
/** 64 KiB of empty masked pings (6 bytes each), written over and over by every flooder. */
const PINGS = Buffer.concat(Array.from({ length: Math.floor(65536 / 6) }, () => Buffer.from([0x89, 0x80, ...randomBytes(4)])))

interface Scenario {
  name: string
  flooders: number
  /** Bytes of pings each flooder sends per connection; without, until the end. */
  bytes?: number
  /** Whether a flooder connects again once cut. */
  reconnect: boolean
  options: Record<string, unknown>
}

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
  /** CPU seconds the gateway process spent during the window (other processes' load does not count). */
  gatewayCpuS: number
}

/** What the flooders did: bytes of pings written, and connections opened (they reconnect when cut). */
interface Flood { sent: number, connections: number }

/** The flooders' child → parent message once told to stop. */
interface FloodedMessage extends Flood { type: 'flooded' }

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
 * A client that writes pings as fast as the gateway reads them, up to `scenario.bytes`, and reads
 * nothing; with `scenario.reconnect` it connects again when the gateway cuts it, until `phase.stopped`.
 */
async function flooder (port: number, headers: Record<string, string>, scenario: Scenario, phase: { stopped: boolean }): Promise<Flood> {
  const flood: Flood = { sent: 0, connections: 0 }
  do {
    const socket = await upgrade(port, headers)
    flood.connections++
    socket.pause()
    socket.on('error', () => {})
    // Plain listeners rather than `once()`, whose promises reject on the socket's 'error'.
    const closed = new Promise((resolve) => socket.once('close', resolve))
    for (let sent = 0; sent < (scenario.bytes ?? Infinity) && !phase.stopped && !socket.destroyed; sent += PINGS.length) {
      flood.sent += PINGS.length
      if (!socket.write(PINGS)) await Promise.race([new Promise((resolve) => socket.once('drain', resolve)), closed])
    }
    // A flooder done sending stays connected, unread, until the end or until it is cut.
    await Promise.race([closed, until(phase)])
    socket.destroy()
  } while (scenario.reconnect && !phase.stopped)
  return flood
}

/** The flooders' child: `scenario.flooders` of them, until the parent says stop. */
async function flooders (port: number, headers: Record<string, string>, scenario: Scenario): Promise<void> {
  const phase = { stopped: false }
  process.once('message', () => { phase.stopped = true })
  process.once('disconnect', () => process.exit(0))
  const floods = await Promise.all(Array.from({ length: scenario.flooders }, async () => await flooder(port, headers, scenario, phase)))
  const message: FloodedMessage = { type: 'flooded', sent: 0, connections: 0 }
  for (const flood of floods) {
    message.sent += flood.sent
    message.connections += flood.connections
  }
  process.send?.(message)
}

/** Resolves once `phase.stopped` is set (polled: this is only the flooders' idle wait). */
async function until (phase: { stopped: boolean }): Promise<void> {
  while (!phase.stopped) await new Promise((resolve) => setTimeout(resolve, 50))
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
    // The victim warms up alone; its window opens as the flood starts.
    await new Promise((resolve) => setTimeout(resolve, 500))
    const cpuBefore = processCpuSeconds(gateway.pid)
    phase.measuring = true
    const flooding = forkTs('flooders', __filename, ['flooders', JSON.stringify({ port, headers, scenario })], ROOT)
    const flooded = nextMessage<FloodedMessage>(flooding, 'flooded', (seconds + 30) * 1000)
    await new Promise((resolve) => setTimeout(resolve, seconds * 1000))
    phase.stopped = true
    flooding.process.send('stop')
    const gatewayCpuS = processCpuSeconds(gateway.pid) - cpuBefore
    const sorted = Float64Array.from(await samples).sort()
    const flood = await flooded
    await stop(flooding)
    return {
      engine,
      scenario: scenario.name,
      flooders: scenario.flooders,
      echoes: sorted.length,
      p50Ms: +percentile(sorted, 0.5).toFixed(2),
      p99Ms: +percentile(sorted, 0.99).toFixed(2),
      maxMs: +(sorted[sorted.length - 1] ?? Number.NaN).toFixed(2),
      floodMiB: +(flood.sent / 2 ** 20).toFixed(0),
      floodConnections: flood.connections,
      gatewayCpuS: +gatewayCpuS.toFixed(2)
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
  const attack = 4 * 1024 * 1024
  const scenarios: Scenario[] = [
    { name: 'no flood', flooders: 0, reconnect: false, options: {} },
    { name: '4 MiB of pings each, default options', flooders, bytes: attack, reconnect: false, options: {} },
    { name: '4 MiB of pings each, rateLimit: false', flooders, bytes: attack, reconnect: false, options: { rateLimit: false } },
    { name: 'pings without end, reconnecting when cut', flooders, reconnect: true, options: {} }
  ]
  const results: Result[] = []
  for (const engine of values.engines.split(',')) {
    for (const scenario of scenarios) {
      const result = await measure(engine, scenario, seconds)
      process.stderr.write(`${engine}, ${scenario.name}: ${result.echoes} echoes, p99 ${result.p99Ms} ms\n`)
      results.push(result)
    }
  }
  process.stdout.write(`${seconds} s per scenario; the victim sends a 64-byte message every 10 ms\n\n`)
  process.stdout.write('| engine | scenario | victim echoes | p50 ms | p99 ms | max ms | gateway CPU s | flood MiB written | flood connections |\n|---|---|---|---|---|---|---|---|---|\n')
  for (const r of results) {
    process.stdout.write(`| ${r.engine} | ${r.scenario}${r.flooders > 0 ? ` (${r.flooders} clients)` : ''} | ${r.echoes} | ${r.p50Ms} | ${r.p99Ms} | ${r.maxMs} | ${r.gatewayCpuS} | ${r.floodMiB} | ${r.floodConnections} |\n`)
  }
  process.stdout.write(`\n${JSON.stringify(results)}\n`)
}

function failed (err: unknown): void {
  process.stderr.write(`${err instanceof Error ? err.stack ?? err.message : String(err)}\n`)
}

if (process.argv[2] === 'flooders') {
  const { port, headers, scenario } = JSON.parse(process.argv[3]) as { port: number, headers: Record<string, string>, scenario: Scenario }
  flooders(port, headers, scenario).catch((err: unknown) => {
    failed(err)
    process.exit(1)
  })
} else {
  main().catch(async (err: unknown) => {
    failed(err)
    await stopAll()
    process.exit(1)
  })
}
