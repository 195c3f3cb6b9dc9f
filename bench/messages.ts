/**
 * Message mode's bench: `node --import tsx bench/messages.ts [--quick] [--rounds N] [--seconds S]
 * [--connections C] [--in-flight K] [--dist FILE] [--out DIR]`.
 *
 * In one run, on 127.0.0.1, each peer its own process with the same backends: round trips per
 * second and p50/p99 latency of small JSON messages, `connections` clients each keeping
 * `inFlight` requests outstanding, through
 *   - messages-http: the gateway's message mode, an HTTP route with a schema (validated, with
 *     correlation ids), to a keep-alive HTTP echo backend;
 *   - handwritten-http: a @fastify/websocket route calling `undici.request` per message;
 *   - messages-ws: the gateway's message mode, a WebSocket route to a ws echo backend;
 *   - relay: the gateway's relay (passthrough engine) to the same ws echo backend.
 * The peer order alternates between rounds. Every answer is matched to its request by id.
 * Results: a markdown table on stdout, JSON in bench/results/.
 */
import { spawnSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import WebSocket from 'ws'
import { forkTs, killAllNow, stop, stopAll, waitReady, type Child } from './children.js'
import { randomSecret, signHs256 } from './jwt.js'
import { processCpuSeconds } from './proc.js'

const ROOT = resolve(__dirname, '..')
const PEERS = ['messages-http', 'handwritten-http', 'messages-ws', 'relay'] as const
type PeerId = typeof PEERS[number]

interface Settings {
  /** The built plugin to load; undefined: build dist/ first and load it. */
  dist: string | undefined
  outDir: string
  rounds: number
  warmupMs: number
  measureMs: number
  connections: number
  inFlight: number
}

interface Measurement {
  peer: PeerId
  round: number
  roundTrips: number
  perSecond: number
  p50: number
  p99: number
  /** CPU time of the peer's process per round trip, in µs: steadier than rates on a busy machine. */
  cpuMicros: number
}

function parseSettings (argv: string[]): Settings {
  const quick = argv.includes('--quick')
  const textOf = (name: string): string | undefined => {
    const at = argv.indexOf(name)
    return at === -1 ? undefined : argv[at + 1]
  }
  const valueOf = (name: string, fallback: number): number => Number(textOf(name) ?? fallback)
  return {
    dist: textOf('--dist'),
    outDir: textOf('--out') ?? join(ROOT, 'bench', 'results'),
    rounds: valueOf('--rounds', quick ? 1 : 3),
    warmupMs: quick ? 300 : 2_000,
    measureMs: valueOf('--seconds', quick ? 1 : 8) * 1000,
    connections: valueOf('--connections', 50),
    inFlight: valueOf('--in-flight', 8)
  }
}

/** Where each peer listens and how a client talks to it. */
interface Target {
  url: string
  headers: Record<string, string>
  /** The id of the request an answer belongs to. */
  idOf: (answer: { id?: number, data?: { id?: number } }) => number | undefined
}

async function startPeer (peer: PeerId, dist: string, backends: { http: string, ws: string }, secret: string): Promise<Child> {
  const file = (name: string): string => join(ROOT, 'bench', 'peers', name)
  if (peer === 'messages-http') return forkTs(peer, file('messages.ts'), [dist, 'http', backends.http, secret], ROOT)
  if (peer === 'messages-ws') return forkTs(peer, file('messages.ts'), [dist, 'ws', backends.ws, secret], ROOT)
  if (peer === 'handwritten-http') return forkTs(peer, file('handwritten-http.ts'), [backends.http], ROOT)
  return forkTs(peer, file('gateway.ts'), [dist, backends.ws, secret], ROOT)
}

function targetOf (peer: PeerId, port: number, token: string): Target {
  const authorization = `Bearer ${token}`
  if (peer === 'relay') return { url: `ws://127.0.0.1:${port}/ws`, headers: { authorization, id: 'Backend_BENCH' }, idOf: (answer) => answer.id }
  if (peer === 'messages-ws') return { url: `ws://127.0.0.1:${port}/api`, headers: { authorization }, idOf: (answer) => answer.data?.id }
  return { url: `ws://127.0.0.1:${port}/api`, headers: { authorization }, idOf: (answer) => answer.id }
}

/**
 * Opens the connections, keeps `inFlight` requests outstanding on each, and measures round trips
 * and latency over the measured window (after the warm-up). Any answer that does not match an
 * outstanding request fails the run.
 */
async function load (target: Target, settings: Settings, pid: number): Promise<{ roundTrips: number, latencies: number[], cpuSeconds: number }> {
  const text = 'x'.repeat(48)
  const latencies: number[] = []
  let measuring = false
  let roundTrips = 0
  let nextId = 0
  let failure: Error | undefined
  const sockets = await Promise.all(Array.from({ length: settings.connections }, async () => {
    const ws = new WebSocket(target.url, { headers: target.headers, perMessageDeflate: false })
    await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject) })
    return ws
  }))
  for (const ws of sockets) {
    const sentAt = new Map<number, number>()
    const send = (): void => {
      const id = nextId++
      sentAt.set(id, performance.now())
      ws.send(JSON.stringify({ action: 'echo', id, text }))
    }
    ws.on('message', (data: Buffer) => {
      const id = target.idOf(JSON.parse(data.toString()))
      const started = id === undefined ? undefined : sentAt.get(id)
      if (started === undefined) {
        failure ??= new Error(`an answer matched no request: ${data.toString().slice(0, 200)}`)
        return
      }
      sentAt.delete(id as number)
      if (measuring) {
        roundTrips++
        latencies.push(performance.now() - started)
      }
      send()
    })
    for (let i = 0; i < settings.inFlight; i++) send()
  }
  await new Promise((resolve) => setTimeout(resolve, settings.warmupMs))
  measuring = true
  const cpuBefore = processCpuSeconds(pid)
  await new Promise((resolve) => setTimeout(resolve, settings.measureMs))
  measuring = false
  const cpuSeconds = processCpuSeconds(pid) - cpuBefore
  for (const ws of sockets) ws.terminate()
  if (failure !== undefined) throw failure
  return { roundTrips, latencies, cpuSeconds }
}

function percentile (sorted: number[], p: number): number {
  return sorted.length === 0 ? NaN : sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]
}

function mean (values: number[]): number {
  return values.reduce((sum, value) => sum + value, 0) / values.length
}

async function main (): Promise<void> {
  const settings = parseSettings(process.argv.slice(2))
  if (settings.dist === undefined) {
    const built = spawnSync(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', 'tsconfig.build.json'], { cwd: ROOT, encoding: 'utf8', timeout: 180_000 })
    if (built.status !== 0) throw new Error(`tsc -p tsconfig.build.json failed: ${built.stdout}${built.stderr}`)
  }
  const dist = settings.dist ?? join(ROOT, 'dist', 'index.js')
  const secret = randomSecret()
  const token = signHs256(secret, 'bench', 3600)
  const httpBackend = forkTs('http-echo', join(ROOT, 'bench', 'peers', 'http-echo.ts'), [], ROOT)
  const wsBackend = forkTs('ws-echo', join(ROOT, 'bench', 'backend.ts'), [], ROOT)
  const backends = { http: `http://127.0.0.1:${await waitReady(httpBackend)}`, ws: `ws://127.0.0.1:${await waitReady(wsBackend)}` }
  const results: Measurement[] = []
  for (let round = 0; round < settings.rounds; round++) {
    const order = round % 2 === 0 ? [...PEERS] : [...PEERS].reverse()
    for (const peer of order) {
      const child = await startPeer(peer, dist, backends, secret)
      try {
        const { roundTrips, latencies, cpuSeconds } = await load(targetOf(peer, await waitReady(child), token), settings, child.pid)
        latencies.sort((a, b) => a - b)
        const measured = {
          peer,
          round,
          roundTrips,
          perSecond: roundTrips / (settings.measureMs / 1000),
          p50: percentile(latencies, 0.5),
          p99: percentile(latencies, 0.99),
          cpuMicros: cpuSeconds * 1e6 / roundTrips
        }
        results.push(measured)
        process.stderr.write(`round ${round + 1} ${peer}: ${Math.round(measured.perSecond)}/s p99 ${measured.p99.toFixed(2)} ms, ${measured.cpuMicros.toFixed(1)} µs CPU\n`)
      } finally {
        await stop(child)
      }
    }
  }
  await Promise.all([stop(httpBackend), stop(wsBackend)])
  const rows = PEERS.map((peer) => {
    const mine = results.filter((r) => r.peer === peer)
    return {
      peer,
      perSecond: mean(mine.map((r) => r.perSecond)),
      p50: mean(mine.map((r) => r.p50)),
      p99: mean(mine.map((r) => r.p99)),
      cpuMicros: mean(mine.map((r) => r.cpuMicros)),
      roundTrips: mine.reduce((sum, r) => sum + r.roundTrips, 0)
    }
  })
  const lines = [
    `${settings.connections} connections × ${settings.inFlight} in flight, 48-byte text in ~80-byte JSON, ${settings.rounds} round(s) of ${settings.measureMs / 1000} s (means)`,
    '',
    '| peer | round trips/s | p50 ms | p99 ms | peer CPU µs per round trip |',
    '|---|---|---|---|---|',
    ...rows.map((row) => `| ${row.peer} | ${Math.round(row.perSecond).toLocaleString('en')} | ${row.p50.toFixed(2)} | ${row.p99.toFixed(2)} | ${row.cpuMicros.toFixed(1)} |`)
  ]
  process.stdout.write(`${lines.join('\n')}\n`)
  const { outDir } = settings
  mkdirSync(outDir, { recursive: true })
  writeFileSync(join(outDir, `messages-${new Date().toISOString().replace(/[:.]/g, '-')}.json`), JSON.stringify({ settings, rows, results }, null, 2))
}

process.on('exit', killAllNow)
main().catch(async (error: unknown) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? error.message : String(error)}\n`)
  await stopAll()
  process.exitCode = 1
})
