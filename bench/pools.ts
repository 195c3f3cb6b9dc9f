/**
 * What failover costs: handshakes per second through the gateway to a pool of 3 echo replicas,
 * all up, against the same pool with one replica down (its port refuses connections).
 *
 *   node --import tsx bench/pools.ts [--seconds 5] [--rounds 3] [--loops 16]
 *
 * Four scenarios, each with a fresh gateway (built dist/, in a child process of its own):
 * - `all 3 up`: round-robin over 3 live replicas;
 * - `2 up, 1 down, default health`: one endpoint refuses; after 3 failures it is ejected, so only
 *   the first connections (and its probation tries) pay for it;
 * - `2 up, 1 down, no ejection` (`health: false`): every third connection tries the dead
 *   endpoint first and fails over: the raw cost of one refused attempt;
 * - `2 up`: the pool without the dead endpoint, what the two above can at best reach (the
 *   replicas share the machine's 2 cores with the gateway and the clients).
 * `--loops` concurrent clients open → close in a loop, a 1 s warm-up, then `--seconds` measured;
 * the scenarios alternate order over `--rounds`, and the median is reported. Everything runs on
 * 127.0.0.1, bounded in time; every child is stopped by PID at the end.
 */
import { spawnSync } from 'node:child_process'
import { once } from 'node:events'
import net, { type AddressInfo } from 'node:net'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import WebSocket from 'ws'
import { forkTs, stop, stopAll, waitReady, type Child } from './children.js'
import { randomSecret, signHs256 } from './jwt.js'
import { processCpuSeconds } from './proc.js'

const root = join(__dirname, '..')
const STEP_TIMEOUT_MS = 10_000

interface Scenario {
  name: string
  /** Live replicas in the pool (of the 3 started). */
  up: 2 | 3
  /** A third endpoint that refuses connections. */
  down: boolean
  health?: false
}

const SCENARIOS: Scenario[] = [
  { name: 'all 3 up', up: 3, down: false },
  { name: '2 up, 1 down (refused), default health', up: 2, down: true },
  { name: '2 up, 1 down (refused), no ejection', up: 2, down: true, health: false },
  { name: '2 up (the same pool without the dead one)', up: 2, down: false }
]

/** A port that refuses connections: bound, then released. */
async function refusingPort (): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}

/** One open → close; rejects on a refusal or after STEP_TIMEOUT_MS. */
async function openClose (url: string, headers: Record<string, string>): Promise<void> {
  const ws = new WebSocket(url, { headers, perMessageDeflate: false })
  const timer = setTimeout(() => ws.terminate(), STEP_TIMEOUT_MS)
  try {
    await once(ws, 'open')
    ws.close(1000)
    await once(ws, 'close')
  } finally {
    clearTimeout(timer)
  }
}

interface Result {
  perSecond: number
  /** The gateway process's CPU time per completed handshake, in µs (less disturbed by other load than the rate). */
  cpuMicros: number
  errors: number
}

/**
 * `loops` concurrent open → close loops; counts what completes inside the measured window, and
 * the CPU the gateway (`cpuSeconds`) spent in it.
 */
async function measure (url: string, headers: Record<string, string>, loops: number, seconds: number, cpuSeconds: () => number): Promise<Result> {
  const phase = { measuring: false, stopping: false }
  let count = 0
  let errors = 0
  const loop = async (): Promise<void> => {
    while (!phase.stopping) {
      try {
        await openClose(url, headers)
        if (phase.measuring) count++
      } catch {
        errors++
      }
    }
  }
  const running = Array.from({ length: loops }, loop)
  await new Promise((resolve) => setTimeout(resolve, 1000))
  phase.measuring = true
  const started = performance.now()
  const cpuAtStart = cpuSeconds()
  await new Promise((resolve) => setTimeout(resolve, seconds * 1000))
  phase.measuring = false
  const cpu = cpuSeconds() - cpuAtStart
  const elapsed = (performance.now() - started) / 1000
  phase.stopping = true
  await Promise.all(running)
  return { perSecond: count / elapsed, cpuMicros: cpu * 1e6 / count, errors }
}

async function runScenario (scenario: Scenario, replicas: string[], secret: string, loops: number, seconds: number): Promise<Result> {
  const urls = [...replicas.slice(0, scenario.up), ...scenario.down ? [`ws://127.0.0.1:${await refusingPort()}`] : []]
  const backend = { urls, ...(scenario.health === false ? { health: false } : {}) }
  const gateway = forkTs('gateway', join(root, 'bench/peers/gateway.ts'), [
    join(root, 'dist/index.js'), replicas[0], secret, JSON.stringify({ backends: { Backend_BENCH: backend }, heartbeatInterval: 0 })
  ], root)
  try {
    const port = await waitReady(gateway)
    const headers = { authorization: `Bearer ${signHs256(secret, 'bench', 3600)}`, id: 'Backend_BENCH' }
    return await measure(`ws://127.0.0.1:${port}/ws`, headers, loops, seconds, () => processCpuSeconds(gateway.pid))
  } finally {
    await stop(gateway)
  }
}

const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]

async function main (): Promise<void> {
  const { values } = parseArgs({ options: { seconds: { type: 'string', default: '5' }, rounds: { type: 'string', default: '3' }, loops: { type: 'string', default: '16' } } })
  const seconds = Math.min(Number(values.seconds), 60)
  const rounds = Math.min(Number(values.rounds), 10)
  const loops = Math.min(Number(values.loops), 64)
  const build = spawnSync('npx', ['tsc', '-p', 'tsconfig.build.json'], { cwd: root, stdio: 'inherit' })
  if (build.status !== 0) throw new Error('build failed')

  const children: Child[] = [0, 1, 2].map((i) => forkTs(`replica ${i}`, join(root, 'bench/backend.ts'), [], root))
  const replicas = (await Promise.all(children.map(async (child) => await waitReady(child)))).map((port) => `ws://127.0.0.1:${port}`)
  const secret = randomSecret()
  const results = new Map<string, Result[]>(SCENARIOS.map((s) => [s.name, []]))
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? SCENARIOS : [...SCENARIOS].reverse()
    for (const scenario of order) {
      const result = await runScenario(scenario, replicas, secret, loops, seconds)
      process.stderr.write(`round ${round + 1} ${scenario.name}: ${result.perSecond.toFixed(0)}/s, ${result.cpuMicros.toFixed(0)} µs CPU each, ${result.errors} errors\n`)
      results.get(scenario.name)?.push(result)
    }
  }
  await stopAll()
  const base = median((results.get(SCENARIOS[0].name) ?? []).map((r) => r.perSecond))
  const baseCpu = median((results.get(SCENARIOS[0].name) ?? []).map((r) => r.cpuMicros))
  console.log(`| scenario (${loops} loops, ${seconds} s × ${rounds} rounds, medians) | handshakes/s | vs all up | gateway CPU µs per handshake | vs all up | client errors |`)
  console.log('|---|---|---|---|---|---|')
  for (const [name, runs] of results) {
    const perSecond = median(runs.map((r) => r.perSecond))
    const cpu = median(runs.map((r) => r.cpuMicros))
    const errors = runs.reduce((sum, r) => sum + r.errors, 0)
    console.log(`| ${name} | ${perSecond.toFixed(0)} | ×${(perSecond / base).toFixed(2)} | ${cpu.toFixed(0)} | ×${(cpu / baseCpu).toFixed(2)} | ${errors} |`)
  }
}

main().catch(async (err: Error) => {
  console.error(err)
  await stopAll()
  process.exitCode = 1
})
