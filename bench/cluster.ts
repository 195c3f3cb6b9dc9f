/**
 * The cluster bench (issue 13 §5): `npm run bench:cluster [-- --quick]`.
 *
 * The gateway on two instances with its registry on Redis, against Socket.IO 4 with
 * @socket.io/redis-adapter on two instances, on one machine and in one run: send latency across
 * instances, broadcast fan-out to connections spread over both instances, and the gateway's
 * handshakes on 1 and 2 node:cluster workers. Every block starts its own processes (a
 * redis-server on a free port without persistence, the servers, two client processes) and stops
 * them by PID; blocks alternate their order every round. Everything is on 127.0.0.1 and every
 * wait is bounded. Results go to stdout (markdown), stderr (progress) and bench/results/.
 */
import { randomBytes } from 'node:crypto'
import { dirname, join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { buildDist } from './build.js'
import { stop, stopAll } from './children.js'
import { randomSecret, signHs256 } from './jwt.js'
import { machineInfo } from './machine.js'
import type { MachineInfo } from './machine.js'
import { progressWriter, runOrchestrator, writeResults } from './orchestrator.js'
import { FULL_TIMING, QUICK_TIMING } from './steps.js'
import type { Timing } from './steps.js'
import { measureBroadcast } from './cluster/broadcast.js'
import { measureLatency } from './cluster/latency.js'
import { measureHandshakes } from './cluster/measure.js'
import type { Keep, Problems, Sizes } from './cluster/measure.js'
import {
  openFilesLimit, redisMissing, startBackend, startClientProcess, startHandshakeGateway, startNode, startRedis
} from './cluster/processes.js'
import type { RunSetup } from './cluster/processes.js'
import type { PeerKind } from './cluster/protocol.js'
import { renderClusterResults } from './cluster/report.js'
import type { BlockId, FigureRecord } from './cluster/report.js'

const BLOCKS: readonly BlockId[] = ['gateway', 'socketio', 'handshakes']
/** Open files a process needs besides its sockets (its own files, Redis links, IPC). */
const FD_SLACK = 256

interface Options {
  quick: boolean
  rounds: number
  sizes: Sizes
  blocks: BlockId[]
  build: boolean
  dist: string | undefined
  outDir: string | undefined
}

const USAGE = `usage: node --import tsx bench/cluster.ts [options]
  --quick              1 round, 200 connections, 5 broadcasts, 50 sends, short handshake windows
  --rounds N           rounds of every block, order alternating (default 2)
  --connections N      connections the broadcasts reach, over 2 instances (default 10000)
  --broadcasts N       broadcasts per broadcast figure (default 20)
  --sends N            sends per latency figure (default 400)
  --blocks a,b         blocks to run (default ${BLOCKS.join(',')})
  --dist FILE          the plugin entry the gateway loads (default dist/index.js; lib/index.ts runs the sources through tsx)
  --no-build           do not run \`tsc -p tsconfig.build.json\` first; use dist/ as it is
  --out DIR            where to write results (default bench/results)`

function integer (name: string, value: string | undefined, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback
  const parsed = Number(value)
  if (!Number.isInteger(parsed) || parsed < min || parsed > max) throw new Error(`--${name} must be an integer ${min}..${max}\n${USAGE}`)
  return parsed
}

function parseOptions (args: string[]): Options {
  const { values } = parseArgs({
    args,
    options: {
      quick: { type: 'boolean', default: false },
      rounds: { type: 'string' },
      connections: { type: 'string' },
      broadcasts: { type: 'string' },
      sends: { type: 'string' },
      blocks: { type: 'string', default: BLOCKS.join(',') },
      dist: { type: 'string' },
      'no-build': { type: 'boolean', default: false },
      out: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false }
    }
  })
  if (values.help) {
    process.stdout.write(`${USAGE}\n`)
    process.exit(0)
  }
  const quick = values.quick
  const blocks = values.blocks.split(',').map((id) => id.trim())
  for (const id of blocks) if (!BLOCKS.includes(id as BlockId)) throw new Error(`unknown block "${id}"\n${USAGE}`)
  return {
    quick,
    rounds: integer('rounds', values.rounds, quick ? 1 : 2, 1, 10),
    sizes: {
      connections: integer('connections', values.connections, quick ? 200 : 10_000, 8, 100_000),
      sends: integer('sends', values.sends, quick ? 50 : 400, 10, 100_000),
      broadcasts: integer('broadcasts', values.broadcasts, quick ? 5 : 20, 1, 1000),
      thinkMs: quick ? 2 : 5
    },
    blocks: blocks as BlockId[],
    build: !values['no-build'],
    dist: values.dist === undefined ? undefined : resolve(values.dist),
    outDir: values.out === undefined ? undefined : resolve(values.out)
  }
}

const progress = progressWriter('bench:cluster')

interface RunState {
  options: Options
  setup: RunSetup
  machine: MachineInfo
  startedAt: Date
  sizeNote: string | undefined
  records: FigureRecord[]
  problems: string[]
}

/** Records a block's figure values as they come, with a progress line each. */
function keep (state: RunState, round: number, block: BlockId): Keep {
  return (values) => {
    for (const value of values) {
      state.records.push({ round, block, ...value })
      const shown = value.value >= 100 ? Math.round(value.value).toLocaleString('en-US') : value.value.toFixed(2)
      progress(`[r${round + 1} ${block}] ${value.figure} ${shown} (load avg ${value.load.loadAverage.toFixed(2)}, others ${value.load.otherCores.toFixed(2)} cores)`)
    }
  }
}

/** Latency and broadcast figures of one peer: Redis, two instances (and the gateway's backend), two client processes. */
async function peerBlock (state: RunState, peer: PeerKind, round: number, problems: Problems): Promise<void> {
  const { setup, options } = state
  const redis = await startRedis()
  const backend = peer === 'gateway' ? await startBackend(setup) : undefined
  const [a, b] = await Promise.all(['a', 'b'].map(async (id) => await startNode(peer, setup, redis.url, id, backend?.port ?? 0)))
  const clients = await Promise.all([1, 2].map(async (n) => await startClientProcess(setup, `clients ${n}`, join('cluster', 'clients.ts'))))
  const serverPids = [a.child.pid, b.child.pid, redis.child.pid, ...(backend === undefined ? [] : [backend.child.pid])]
  const cluster = { peer, a, b, serverPids, aConnections: 0, clients, setup }
  const keeper = keep(state, round, peer)
  await measureLatency(cluster, options.sizes, problems, keeper)
  progress(`[r${round + 1} ${peer}] opening ${options.sizes.connections.toLocaleString('en-US')} connections over 2 instances`)
  await measureBroadcast(cluster, options.sizes, problems, keeper)
}

/** Handshakes/s of the gateway with its registry on Redis: one plain process, then 1 and 2 node:cluster workers. */
async function handshakeBlock (state: RunState, round: number, problems: Problems): Promise<void> {
  const { setup, options } = state
  const timing: Timing = options.quick ? QUICK_TIMING : FULL_TIMING
  const redis = await startRedis()
  const backend = await startBackend(setup)
  const load = await startClientProcess(setup, 'load', 'load.ts')
  const order = round % 2 === 0 ? [0, 1, 2] : [2, 1, 0]
  for (const workers of order) {
    const gateway = await startHandshakeGateway(setup, backend.port, redis.url, workers)
    try {
      await measureHandshakes(gateway, backend, redis, load, setup, workers, timing, problems, keep(state, round, 'handshakes'))
    } finally {
      await stop(gateway.child)
    }
  }
}

async function runBlock (state: RunState, block: BlockId, round: number): Promise<void> {
  const problems: Problems = []
  progress(`[r${round + 1} ${block}] starting`)
  try {
    if (block === 'handshakes') await handshakeBlock(state, round, problems)
    else await peerBlock(state, block, round, problems)
  } catch (error) {
    problems.push(`block failed: ${error instanceof Error ? error.message : String(error)}`)
  } finally {
    await stopAll()
  }
  for (const problem of problems) {
    state.problems.push(`round ${round + 1} ${block}: ${problem}`)
    progress(`[r${round + 1} ${block}] PROBLEM: ${problem}`)
  }
}

/** The connections asked for, or as many as the open-files limit allows (the gateway instance holds two sockets per connection of its half). */
function fitConnections (sizes: Sizes): string | undefined {
  const limit = openFilesLimit()
  if (sizes.connections + FD_SLACK <= limit) return undefined
  const asked = sizes.connections
  sizes.connections = Math.max(8, limit - FD_SLACK)
  return `lowered from ${asked.toLocaleString('en-US')}: the open-files limit is ${limit}; raise it with \`ulimit -n\``
}

async function main (): Promise<number> {
  const options = parseOptions(process.argv.slice(2))
  const bench = dirname(resolve(process.argv[1] ?? 'bench/cluster.ts'))
  const root = dirname(bench)
  const missing = redisMissing()
  if (missing !== undefined) {
    progress(missing)
    return 1
  }
  const entry = options.dist ?? join(root, 'dist', 'index.js')
  if (options.build && options.dist === undefined && options.blocks.some((block) => block !== 'socketio')) {
    progress('building dist/ (tsc -p tsconfig.build.json)')
    const failure = buildDist(root)
    if (failure !== undefined) {
      progress(failure)
      return 1
    }
  }
  const sizeNote = fitConnections(options.sizes)
  if (sizeNote !== undefined) progress(`connections ${sizeNote}`)
  const secret = randomSecret()
  const state: RunState = {
    options,
    setup: {
      root,
      bench,
      entry,
      secret,
      adminKey: randomBytes(16).toString('hex'),
      headers: { authorization: `Bearer ${signHs256(secret, 'bench-client', 24 * 3600)}`, id: 'Backend_BENCH' }
    },
    machine: machineInfo(root, ['socket.io', '@socket.io/redis-adapter', 'socket.io-client', 'ioredis']),
    startedAt: new Date(),
    sizeNote,
    records: [],
    problems: []
  }
  current = state
  progress(`${state.machine.cores} cores, Node ${state.machine.node}, load average ${state.machine.loadAverageAtStart.join(' / ')}`)
  for (let round = 0; round < options.rounds; round++) {
    const order = round % 2 === 0 ? options.blocks : [...options.blocks].reverse()
    progress(`round ${round + 1}/${options.rounds}: ${order.join(' → ')}`)
    for (const block of order) await runBlock(state, block, round)
  }
  finish(state, false)
  return state.problems.length > 0 ? 1 : 0
}

/** Write results (also partial ones after an interrupt) to stdout and the results directory. */
function finish (state: RunState, interrupted: boolean): void {
  const { options } = state
  const files = {
    what: 'cluster bench', outDir: options.outDir ?? join(state.setup.bench, 'results'), prefix: 'cluster', latest: 'cluster-latest', startedAt: state.startedAt, quick: options.quick, interrupted, options
  }
  writeResults(files, (title, meta) => renderClusterResults({
    title,
    machine: state.machine,
    rounds: options.rounds,
    sizes: options.sizes,
    sizeNote: state.sizeNote,
    records: state.records,
    problems: state.problems,
    meta
  }), progress)
}

let current: RunState | undefined

runOrchestrator(main, () => {
  if (current !== undefined && current.records.length > 0) finish(current, true)
}, progress)
