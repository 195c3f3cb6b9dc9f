/**
 * What the cluster bench's measurements share (latency.ts, broadcast.ts, and the handshakes
 * here): the servers of a block, the sizes of a run, sequence numbers, opening connections, and
 * the load on the machine and the servers' cost while a figure is taken. Each measurement hands
 * its figure values, with that load, to `Keep` as soon as it has them.
 */
import { loadavg } from 'node:os'
import type { Child } from '../children.js'
import { livePids } from '../children.js'
import { childPids, machineCpu, processWriteCalls, processesCpuSeconds } from '../proc.js'
import { STEPS, runStep } from '../steps.js'
import type { StepDef, Timing } from '../steps.js'
import type { FigureId } from './report.js'
import { ask } from './processes.js'
import type { RunSetup, Started } from './processes.js'
import type { Count, OpenRequest, Opened, PeerKind } from './protocol.js'

/** The machine while a figure was taken: 1-minute load average at its start, and other processes' CPU. */
export interface Load {
  loadAverage: number
  /** Mean cores busy with processes that are not this run's, over the measurement. */
  otherCores: number
}

export interface FigureValue {
  figure: FigureId
  value: number
  load: Load
}

/** Where a measurement puts each figure value as soon as it has it. */
export type Keep = (values: FigureValue[]) => void

/** Something that went wrong in a measurement (lost or duplicated messages, rejected calls). */
export type Problems = string[]

/** What the servers of a block (instances, Redis, the gateway's backend) spent meanwhile. */
export interface ServerCost {
  cpuSeconds: number
  /** Write-class system calls of the two instances. */
  instanceWrites: number
}

/**
 * Runs `work` and tells the load on the machine meanwhile, and what the servers spent: CPU of
 * `servers`, write system calls of `instances`.
 */
export async function underLoad<T> (work: () => Promise<T>, servers: readonly number[] = [], instances: readonly number[] = []): Promise<{ result: T, load: Load, cost: ServerCost }> {
  const pids = livePids()
  const sample = (): { at: number, busy: number, ours: number, servers: number, writes: number } => {
    const self = process.cpuUsage()
    return {
      at: performance.now(),
      busy: machineCpu().busy,
      ours: processesCpuSeconds(pids) + (self.user + self.system) / 1e6,
      servers: processesCpuSeconds(servers),
      writes: instances.reduce((sum, pid) => sum + processWriteCalls(pid), 0)
    }
  }
  const loadAverage = loadavg()[0] ?? Number.NaN
  const first = sample()
  const result = await work()
  const last = sample()
  const others = Math.max(0, last.busy - first.busy - (last.ours - first.ours))
  return {
    result,
    load: { loadAverage, otherCores: others / Math.max(0.001, (last.at - first.at) / 1000) },
    cost: { cpuSeconds: last.servers - first.servers, instanceWrites: last.writes - first.writes }
  }
}

/** The sizes of one run: `--quick` makes them small. */
export interface Sizes {
  /** Connections the broadcast reaches, over both instances. */
  connections: number
  /** Sends per latency figure (the 16-at-once figure makes four times as many). */
  sends: number
  broadcasts: number
  /** ms between sends (or bursts of sends) of a latency figure. */
  thinkMs: number
}

/** The servers of one block: instance A (where calls are made), B, and the client processes. */
export interface Cluster {
  peer: PeerKind
  a: { child: Child, port: number }
  b: { child: Child, port: number }
  /** Every server process whose CPU a delivery costs: A, B, Redis, the gateway's backend. */
  serverPids: number[]
  /** Connections the broadcast step opened to A. */
  aConnections: number
  clients: Child[]
  setup: RunSetup
}

/** Where a client of `peer` connects to an instance listening on `port`. */
export const urlOf = (peer: PeerKind, port: number): string => peer === 'gateway' ? `ws://127.0.0.1:${port}/ws` : `ws://127.0.0.1:${port}`

/** Has `client` open connections to `targets`; resolves with their ids (see `Opened`). */
export async function open (cluster: Cluster, client: Child, targets: OpenRequest['targets'], witness: boolean): Promise<string[]> {
  const request: OpenRequest = { type: 'open', peer: cluster.peer, targets, headers: cluster.setup.headers, concurrency: 50, witness }
  const timeoutMs = 60_000 + targets.reduce((sum, target) => sum + target.count, 0) * 20
  return (await ask<Opened>(client, request, 'opened', timeoutMs)).ids
}

/**
 * Waits (bounded) until instance A's registry lists `count` connections: a connection opened a
 * moment ago may not be registered yet (the gateway registers it in Redis right after the 101, a
 * round trip later), and a call before that would not reach it.
 */
export async function untilListed (cluster: Cluster, count: number, timeoutMs = 30_000): Promise<void> {
  const deadline = performance.now() + timeoutMs
  let listed = 0
  while (performance.now() < deadline) {
    listed = (await ask<Count>(cluster.a.child, { type: 'count' }, 'count', timeoutMs)).connections
    if (listed === count) return
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
  throw new Error(`instance A lists ${listed} connections, not ${count}, after ${timeoutMs} ms`)
}

/** Sequence numbers unique over a block, so no late message is mistaken for a later one. */
let nextSeq = 1
export function seqRange (count: number): number {
  const first = nextSeq
  nextSeq += count
  return first
}

/**
 * Handshakes per second against a gateway on `workers` workers with its registry on Redis: the
 * main bench's handshake step (load.ts, 16 loops of open → close, JWT verified, backend opened
 * first), and the CPU per handshake of the gateway's processes (primary, workers) and Redis.
 */
export async function measureHandshakes (
  gateway: Started, backend: Started, redis: Started, loadGenerator: Child, setup: RunSetup, workers: number, timing: Timing, problems: Problems, keep: Keep
): Promise<void> {
  const step = STEPS.find((candidate) => candidate.id === 'handshakes') as StepDef
  const loadAverage = loadavg()[0] ?? Number.NaN
  const measurement = await runStep(step, {
    load: loadGenerator,
    backend: backend.child,
    target: { url: `ws://127.0.0.1:${gateway.port}/ws`, headers: setup.headers },
    timing,
    peer: {
      url: `ws://127.0.0.1:${gateway.port}/ws`,
      relayPids: () => [gateway.child.pid, ...childPids(gateway.child.pid), redis.child.pid],
      memoryKiB: async () => 0,
      gcForced: false,
      stop: async () => {}
    }
  })
  if (measurement.errors > 0) problems.push(`handshakes on ${workers} workers: ${measurement.errors} errors, first: ${measurement.firstError ?? '?'}`)
  const suffix = workers === 0 ? 'Solo' : String(workers)
  const load = { loadAverage, otherCores: measurement.otherCores }
  keep([
    { figure: `handshakes${suffix}` as FigureId, value: measurement.rate, load },
    { figure: `hsCpu${suffix}` as FigureId, value: measurement.cpu.relay * 1000 / Math.max(1, measurement.count), load }
  ])
}
