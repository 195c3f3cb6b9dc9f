/**
 * The benchmark orchestrator: `node --import tsx bench/run.ts [--quick]`.
 *
 * It runs every peer in each mode of modes.ts: `isolated` starts a fresh ws echo backend, the
 * peer's relay and a load generator (each its own process) for every step of steps.ts and stops
 * them by PID after it; `long-lived` starts them once per peer and keeps them for every step and
 * round of the mode. The peer order is reversed every other round so that drift on a shared
 * machine does not always favour the same peer. A step during which other processes kept
 * the CPU busy is repeated a bounded number of times. Results go to stdout (markdown), stderr
 * (progress) and bench/results/ (JSON + markdown).
 */
import { dirname, join, resolve } from 'node:path'
import { buildDist } from './build.js'
import { randomSecret, signHs256 } from './jwt.js'
import { machineInfo } from './machine.js'
import type { MachineInfo } from './machine.js'
import { progressWriter, runOrchestrator, writeResults } from './orchestrator.js'
import { OPTIONAL_PEERS, PEERS } from './peer-registry.js'
import { MODES, startServers, stopServers } from './modes.js'
import type { ModeDef, ModeId, Servers } from './modes.js'
import type { PeerDef, PeerId, Paths } from './peer-registry.js'
import { renderResults } from './report.js'
import { FULL_TIMING, QUICK_TIMING, STEPS, runStep, waitForQuiet } from './steps.js'
import type { BlockRecord, StepContext, StepDef, StepId, StepMeasurement, StepRecord, Timing } from './steps.js'

/** Longest wait for other processes to calm down before repeating a disturbed step. */
const QUIET_WAIT_MS = 15_000

interface Options {
  quick: boolean
  rounds: number
  peers: PeerId[] | undefined
  build: boolean
  maxRepeats: number
  /** Mean cores used by other processes above which a step counts as disturbed. */
  disturbedCores: number
  outDir: string | undefined
  dist: string | undefined
  modes: ModeId[]
  /** Steps to run (default all). */
  steps: StepId[] | undefined
}

const USAGE = `usage: node --import tsx bench/run.ts [options]
  --quick              1 round per mode, short windows, 200 idle connections (1–2 minutes)
  --rounds N           rounds of all peers per mode, order alternating (default 2)
  --modes a,b          ${MODES.map((mode) => mode.id).join(',')} (default both, in this order)
  --steps a,b          steps to run (default all: ${STEPS.map((step) => step.id).join(',')})
  --peers a,b          peers to run (default ${PEERS.map((peer) => peer.id).join(',')}; also: ${OPTIONAL_PEERS.map((peer) => peer.id).join(',')})
  --dist FILE          the built plugin to load (default dist/index.js)
  --no-build           do not run \`tsc -p tsconfig.build.json\` first; use dist/ as it is
  --max-repeats N      repeats of a disturbed step (default 2; 0 with --quick)
  --disturbed-cores X  other processes' mean CPU (cores) that marks a step disturbed (default 0.25)
  --out DIR            where to write results (default bench/results)`

function parseOptions (argv: string[]): Options {
  const options: Options = {
    quick: false, rounds: 2, peers: undefined, build: true, maxRepeats: -1, disturbedCores: 0.25, outDir: undefined, dist: undefined, modes: MODES.map((mode) => mode.id), steps: undefined
  }
  const list = <T extends string>(name: string, raw: string, known: readonly T[]): T[] => {
    const ids = raw.split(',').map((id) => id.trim())
    for (const id of ids) if (!known.includes(id as T)) throw new Error(`${name}: unknown "${id}"\n${USAGE}`)
    return ids as T[]
  }
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]
    const value = (): string => {
      const next = argv[++i]
      if (next === undefined) throw new Error(`${arg ?? ''} needs a value\n${USAGE}`)
      return next
    }
    const count = (name: string, max: number): number => {
      const parsed = Number(value())
      if (!Number.isInteger(parsed) || parsed < 0 || parsed > max) throw new Error(`${name} must be an integer 0..${max}`)
      return parsed
    }
    if (arg === '--quick') options.quick = true
    else if (arg === '--rounds') options.rounds = Math.max(1, count('--rounds', 20))
    else if (arg === '--no-build') options.build = false
    else if (arg === '--max-repeats') options.maxRepeats = count('--max-repeats', 5)
    else if (arg === '--disturbed-cores') options.disturbedCores = Number(value())
    else if (arg === '--out') options.outDir = resolve(value())
    else if (arg === '--dist') options.dist = resolve(value())
    else if (arg === '--peers') options.peers = list('--peers', value(), [...PEERS, ...OPTIONAL_PEERS].map((peer) => peer.id))
    else if (arg === '--modes') options.modes = list('--modes', value(), MODES.map((mode) => mode.id))
    else if (arg === '--steps') options.steps = list('--steps', value(), STEPS.map((step) => step.id))
    else if (arg === '--help' || arg === '-h') {
      process.stdout.write(`${USAGE}\n`)
      process.exit(0)
    } else throw new Error(`unknown option "${arg ?? ''}"\n${USAGE}`)
  }
  if (options.quick) options.rounds = 1
  if (options.maxRepeats < 0) options.maxRepeats = options.quick ? 0 : 2
  return options
}

const progress = progressWriter('bench')

function describe (m: StepMeasurement): string {
  const parts: string[] = []
  if (m.step === 'idle') parts.push(`${m.count} conns, ${m.idle?.kiBPerConnection.toFixed(1) ?? '?'} KiB each`)
  else if (m.p50Ms !== undefined) parts.push(`p50 ${m.p50Ms.toFixed(2)} ms, p99 ${m.p99Ms?.toFixed(2) ?? '?'} ms (${m.count} samples)`)
  else parts.push(`${Math.round(m.rate).toLocaleString('en-US')}/s`)
  if (m.relayUsPerRoundTrip !== undefined) parts.push(`relay ${m.relayUsPerRoundTrip.toFixed(1)} µs/${m.step === 'handshakes' ? 'handshake' : 'rt'}`)
  if (m.relayGc !== undefined) parts.push(`${m.relayGc.markCompacts} mark-compacts`)
  parts.push(`others ${m.otherCores.toFixed(2)} cores`)
  if (m.errors > 0) parts.push(`${m.errors} ERRORS (${m.firstError ?? ''})`)
  return parts.join(', ')
}

interface RunState {
  options: Options
  timing: Timing
  paths: Paths
  startedAt: Date
  machine: MachineInfo
  active: PeerDef[]
  skipped: Array<{ peer: PeerId, reason: string }>
  headers: Record<string, string>
  secret: string
  steps: StepRecord[]
  blocks: BlockRecord[]
}

/** One step against a peer's processes: repeated while disturbed (bounded), the least disturbed attempt kept. */
async function measureStep (state: RunState, at: { mode: ModeId, round: number, peer: PeerId }, step: StepDef, context: StepContext): Promise<void> {
  const { options } = state
  const tag = `${at.mode} r${at.round + 1} ${at.peer}`
  const attempts: StepMeasurement[] = []
  for (let attempt = 0; attempt <= options.maxRepeats; attempt++) {
    const measurement = await runStep(step, context)
    attempts.push(measurement)
    const disturbed = step.id !== 'idle' && measurement.otherCores > options.disturbedCores
    progress(`[${tag}] ${step.label}: ${describe(measurement)}${disturbed ? ' — DISTURBED' : ''}`)
    if (!disturbed) break
    if (attempt < options.maxRepeats) {
      const level = await waitForQuiet(context, options.disturbedCores, QUIET_WAIT_MS)
      progress(`[${tag}] repeating ${step.label} (attempt ${attempt + 2}; others now ${level.toFixed(2)} cores)`)
    }
  }
  const best = attempts.reduce((a, b) => (b.otherCores < a.otherCores ? b : a))
  state.steps.push({
    ...at,
    attempts: attempts.length,
    otherCoresPerAttempt: attempts.map((m) => Math.round(m.otherCores * 1000) / 1000),
    disturbed: step.id !== 'idle' && best.otherCores > options.disturbedCores,
    measurement: best
  })
}

/**
 * Every round of one mode: isolated starts a peer's processes for each step, long-lived once per
 * peer for the whole mode. A peer whose processes fail is recorded and, in long-lived mode,
 * started afresh in the next round.
 */
async function runMode (state: RunState, mode: ModeDef): Promise<void> {
  const steps = mode.order
    .filter((id) => state.options.steps === undefined || state.options.steps.includes(id))
    .map((id) => STEPS.find((step) => step.id === id) as StepDef)
  const kept = new Map<PeerId, Servers>()
  try {
    for (let round = 0; round < state.options.rounds; round++) {
      const order = round % 2 === 0 ? state.active : [...state.active].reverse()
      progress(`${mode.id} round ${round + 1}/${state.options.rounds}: ${order.map((peer) => peer.id).join(' → ')}`)
      for (const peer of order) {
        const at = { mode: mode.id, round, peer: peer.id }
        const block: BlockRecord = { ...at }
        state.blocks.push(block)
        try {
          for (const step of steps) {
            if (mode.id === 'isolated') {
              const servers = await startServers(peer, state)
              try {
                await measureStep(state, at, step, servers.context)
              } finally {
                await stopServers(servers)
              }
            } else {
              let servers = kept.get(peer.id)
              if (servers === undefined) {
                servers = await startServers(peer, state)
                kept.set(peer.id, servers)
              }
              await measureStep(state, at, step, servers.context)
            }
          }
        } catch (error) {
          block.error = error instanceof Error ? error.message : String(error)
          progress(`[${mode.id} r${round + 1} ${peer.id}] FAILED: ${block.error}`)
          const servers = kept.get(peer.id)
          kept.delete(peer.id)
          if (servers !== undefined) await stopServers(servers)
        }
      }
    }
  } finally {
    for (const servers of kept.values()) await stopServers(servers)
  }
}

function notes (state: RunState): string[] {
  const lines: string[] = []
  for (const record of state.steps) {
    const m = record.measurement
    const where = `${record.mode} round ${record.round + 1} ${record.peer} ${m.step}`
    if (record.attempts > 1) {
      lines.push(`${where}: repeated (${record.attempts} attempts; other processes used ${record.otherCoresPerAttempt.join(', ')} cores)${record.disturbed ? ', still disturbed' : ''}`)
    } else if (record.disturbed) {
      lines.push(`${where}: disturbed (other processes used ${record.otherCoresPerAttempt.join(', ')} cores), not repeated`)
    }
    if (m.errors > 0) lines.push(`${where}: ${m.errors} echo/connection errors, first: ${m.firstError ?? '?'}`)
    if (m.idle !== undefined && m.idle.connections < state.timing.idleConnections) {
      lines.push(`${where}: only ${m.idle.connections} of ${state.timing.idleConnections} idle connections opened`)
    }
  }
  for (const block of state.blocks) {
    if (block.error !== undefined) lines.push(`${block.mode} round ${block.round + 1} ${block.peer}: block failed: ${block.error}`)
  }
  return lines
}

async function main (): Promise<number> {
  const options = parseOptions(process.argv.slice(2))
  const bench = dirname(resolve(process.argv[1] ?? 'bench/run.ts'))
  const root = dirname(bench)
  const paths: Paths = { root, bench, distEntry: options.dist ?? join(root, 'dist', 'index.js') }
  const timing = options.quick ? QUICK_TIMING : FULL_TIMING
  const startedAt = new Date()

  let buildError: string | undefined
  const gatewayIds: PeerId[] = ['gateway', 'gateway-ws', 'gateway-1w', 'gateway-2w']
  const wantsGateway = options.peers === undefined || options.peers.some((id) => gatewayIds.includes(id))
  if (options.build && options.dist === undefined && wantsGateway) {
    progress('building dist/ (tsc -p tsconfig.build.json)')
    buildError = buildDist(root)
  }
  const machine = machineInfo(root)
  progress(`${machine.cores} cores, Node ${machine.node}, ws ${machine.versions.ws ?? '?'}, bufferutil native: ${machine.bufferutilNative}`)

  const skipped: Array<{ peer: PeerId, reason: string }> = []
  const active: PeerDef[] = []
  for (const peer of [...PEERS, ...OPTIONAL_PEERS]) {
    if (options.peers === undefined ? OPTIONAL_PEERS.includes(peer) : !options.peers.includes(peer.id)) continue
    const reason = gatewayIds.includes(peer.id) && buildError !== undefined ? buildError : peer.skipReason(paths)
    if (reason === undefined) active.push(peer)
    else {
      skipped.push({ peer: peer.id, reason })
      progress(`skipping ${peer.label}: ${reason}`)
    }
  }

  const secret = randomSecret()
  const state: RunState = {
    options,
    timing,
    paths,
    secret,
    startedAt,
    machine,
    active,
    skipped,
    // Every peer gets the same request headers; only the gateway acts on them.
    headers: { authorization: `Bearer ${signHs256(secret, 'bench-client', 24 * 3600)}`, id: 'Backend_BENCH' },
    steps: [],
    blocks: []
  }
  current = state
  for (const mode of MODES.filter((m) => options.modes.includes(m.id))) await runMode(state, mode)

  const failed = state.blocks.some((block) => block.error !== undefined) ||
    state.steps.some((record) => record.measurement.errors > 0)
  finish(state, false)
  return failed ? 1 : 0
}

/** Write results (also partial ones after an interrupt) to stdout and the results directory. */
function finish (state: RunState, interrupted: boolean): void {
  const { options, timing } = state
  const files = {
    what: 'bench', outDir: options.outDir ?? join(state.paths.bench, 'results'), prefix: 'bench', latest: 'latest', startedAt: state.startedAt, quick: options.quick, interrupted, options
  }
  writeResults(files, (title, meta) => renderResults({
    title,
    machine: state.machine,
    rounds: options.rounds,
    modes: MODES.filter((mode) => options.modes.includes(mode.id)),
    timing,
    peers: state.active.map((peer) => ({ id: peer.id, label: peer.label })),
    skipped: state.skipped,
    records: state.steps,
    blocks: state.blocks,
    notes: notes(state),
    meta
  }), progress)
}

let current: RunState | undefined

runOrchestrator(main, () => {
  if (current !== undefined && current.steps.length > 0) finish(current, true)
}, progress)
