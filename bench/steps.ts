/**
 * The figures measured for every peer, and how one step is run: hand the job to the load
 * generator, sample /proc exactly when it opens and closes the measured window, and charge CPU
 * to the relay, the backend, the load generator and "everyone else" on the machine.
 */
import { nextMessage } from './children.js'
import type { Child } from './children.js'
import { machineCpu, processCpuSeconds, processesCpuSeconds } from './proc.js'
import type { IdleOpen, Job, JobRequest, JobResult, ReleaseRequest, Target } from './protocol.js'
import type { ModeId } from './modes.js'
import type { PeerId, StartedPeer } from './peer-registry.js'

export type StepId = 'tp64' | 'tp1k' | 'tp64k' | 'lat64' | 'lat64k' | 'handshakes' | 'idle'

export interface Timing {
  warmupMs: number
  measureMs: number
  idleConnections: number
}

export const FULL_TIMING: Timing = { warmupMs: 1_000, measureMs: 5_000, idleConnections: 2_000 }
export const QUICK_TIMING: Timing = { warmupMs: 300, measureMs: 1_000, idleConnections: 200 }

export interface StepDef {
  id: StepId
  label: string
  job: (target: Target, timing: Timing) => Job
}

const throughput = (size: number, binary: boolean) => (target: Target, timing: Timing): Job => ({
  kind: 'throughput', target, size, binary, connections: 50, inFlight: 8, ...timing
})
const latency = (size: number, binary: boolean) => (target: Target, timing: Timing): Job => ({
  kind: 'latency', target, size, binary, connections: 10, thinkMs: 5, ...timing
})

/**
 * Idle memory comes first, while the relay is fresh: once the throughput steps have grown its heap
 * and RSS, V8 keeps that memory and new connections fit in it without any RSS growth.
 */
export const STEPS: readonly StepDef[] = [
  {
    id: 'idle',
    label: 'RSS per idle connection',
    job: (target, timing) => ({
      kind: 'idle', target, connections: timing.idleConnections, openConcurrency: 50, timeoutMs: 60_000
    })
  },
  { id: 'tp64', label: 'throughput 64 B text', job: throughput(64, false) },
  { id: 'tp1k', label: 'throughput 1 KiB text', job: throughput(1024, false) },
  { id: 'tp64k', label: 'throughput 64 KiB binary', job: throughput(65536, true) },
  { id: 'lat64', label: 'low-load latency 64 B text', job: latency(64, false) },
  { id: 'lat64k', label: 'low-load latency 64 KiB binary', job: latency(65536, true) },
  {
    id: 'handshakes',
    label: 'handshakes (16 open→close loops)',
    job: (target, timing) => ({ kind: 'handshakes', target, loops: 16, ...timing })
  }
]

export interface Sample {
  at: number
  machineBusy: number
  relay: number
  /** The relay's first process alone: the node:cluster primary, the nginx master. */
  relayMain: number
  backend: number
  load: number
  self: number
}

export interface StepMeasurement {
  step: StepId
  count: number
  seconds: number
  /** Round trips, handshakes or samples per second. */
  rate: number
  p50Ms?: number
  p99Ms?: number
  errors: number
  firstError?: string
  /** CPU seconds used inside the measured window. */
  cpu: { relay: number, relayMain: number, backend: number, load: number, self: number, others: number }
  /** Mean number of cores busy with processes that are not ours during the window. */
  otherCores: number
  /** Relay CPU per round trip (throughput) or per handshake. */
  relayUsPerRoundTrip?: number
  /** The relay's collections inside the window (Node relays of one process only). */
  relayGc?: { markCompacts: number, markCompactMs: number, scavenges: number, scavengeMs: number }
  idle?: { connections: number, relayKiBBefore: number, relayKiBAfter: number, kiBPerConnection: number, gcForced: boolean }
}

export interface StepRecord {
  mode: ModeId
  round: number
  peer: PeerId
  attempts: number
  /** Mean cores used by other processes in each attempt. */
  otherCoresPerAttempt: number[]
  /** True when even the least disturbed attempt exceeded the threshold. */
  disturbed: boolean
  measurement: StepMeasurement
}

export interface BlockRecord {
  mode: ModeId
  round: number
  peer: PeerId
  error?: string
}

export interface StepContext {
  load: Child
  backend: Child
  peer: StartedPeer
  target: Target
  timing: Timing
}

function sample (context: StepContext): Sample {
  const self = process.cpuUsage()
  return {
    at: performance.now(),
    machineBusy: machineCpu().busy,
    relay: processesCpuSeconds(context.peer.relayPids()),
    relayMain: processesCpuSeconds(context.peer.relayPids().slice(0, 1)),
    backend: processCpuSeconds(context.backend.pid),
    load: processCpuSeconds(context.load.pid),
    self: (self.user + self.system) / 1e6
  }
}

/** CPU deltas between two samples; "others" is machine busy time not spent by our processes. */
function cpuBetween (start: Sample, end: Sample): { cpu: StepMeasurement['cpu'], otherCores: number } {
  const relay = end.relay - start.relay
  const backend = end.backend - start.backend
  const load = end.load - start.load
  const self = end.self - start.self
  const others = Math.max(0, end.machineBusy - start.machineBusy - relay - backend - load - self)
  const seconds = Math.max(0.001, (end.at - start.at) / 1000)
  return { cpu: { relay, relayMain: end.relayMain - start.relayMain, backend, load, self, others }, otherCores: others / seconds }
}

function sendJob (load: Child, job: Job): void {
  load.process.send({ type: 'job', job } satisfies JobRequest)
}

/** Register for a message before the job is sent; failures surface where it is awaited. */
function expect<T extends { type: string }> (load: Child, type: T['type'], timeoutMs: number): Promise<T> {
  const promise = nextMessage<T>(load, type, timeoutMs)
  promise.catch(() => {})
  return promise
}

async function measureWindow (context: StepContext, job: Exclude<Job, { kind: 'idle' }>): Promise<StepMeasurement> {
  const slack = 60_000
  const started = expect(context.load, 'window-start', job.warmupMs + slack)
  const ended = expect(context.load, 'window-end', job.warmupMs + job.measureMs + slack)
  const result = expect<JobResult>(context.load, 'result', job.warmupMs + job.measureMs + 2 * slack)
  sendJob(context.load, job)
  await started
  const first = sample(context)
  const gcFirst = context.peer.gcStats?.()
  await ended
  const last = sample(context)
  const gcLast = context.peer.gcStats?.()
  const outcome = await result
  const [gc0, gc1] = [await gcFirst, await gcLast]
  const { cpu, otherCores } = cpuBetween(first, last)
  const measurement: StepMeasurement = {
    step: 'tp64',
    count: outcome.count,
    seconds: outcome.seconds,
    rate: outcome.count / outcome.seconds,
    p50Ms: outcome.p50Ms,
    p99Ms: outcome.p99Ms,
    errors: outcome.errors,
    firstError: outcome.firstError,
    cpu,
    otherCores
  }
  if (job.kind !== 'latency' && outcome.count > 0 && context.peer.relayPids().length > 0) {
    measurement.relayUsPerRoundTrip = (cpu.relay * 1e6) / outcome.count
  }
  if (gc0 !== undefined && gc1 !== undefined) {
    measurement.relayGc = {
      markCompacts: gc1.markCompacts - gc0.markCompacts,
      markCompactMs: gc1.markCompactMs - gc0.markCompactMs,
      scavenges: gc1.scavenges - gc0.scavenges,
      scavengeMs: gc1.scavengeMs - gc0.scavengeMs
    }
  }
  return measurement
}

async function measureIdle (context: StepContext, job: Extract<Job, { kind: 'idle' }>): Promise<StepMeasurement> {
  const before = await context.peer.memoryKiB()
  const first = sample(context)
  const opened = expect<IdleOpen>(context.load, 'idle-open', 120_000)
  const result = expect<JobResult>(context.load, 'result', 180_000)
  sendJob(context.load, job)
  const { opened: connections } = await opened
  // Let the last handshakes' transient buffers settle before the GC.
  await new Promise((resolve) => setTimeout(resolve, 300))
  const after = await context.peer.memoryKiB()
  const last = sample(context)
  context.load.process.send({ type: 'release' } satisfies ReleaseRequest)
  const outcome = await result
  const { cpu, otherCores } = cpuBetween(first, last)
  const kiBPerConnection = connections > 0 ? (after - before) / connections : Number.NaN
  return {
    step: 'idle',
    count: connections,
    seconds: outcome.seconds,
    rate: connections / Math.max(0.001, outcome.seconds),
    errors: outcome.errors,
    firstError: outcome.firstError,
    cpu,
    otherCores,
    idle: { connections, relayKiBBefore: before, relayKiBAfter: after, kiBPerConnection, gcForced: context.peer.gcForced }
  }
}

/**
 * Before repeating a disturbed step, wait (bounded) for other processes to calm down: sample in
 * 1 s slices until their mean CPU is under `cores` or `maxMs` has passed. Returns the last level.
 */
export async function waitForQuiet (context: StepContext, cores: number, maxMs: number): Promise<number> {
  const deadline = performance.now() + maxMs
  let level = Number.POSITIVE_INFINITY
  while (performance.now() < deadline) {
    const first = sample(context)
    await new Promise((resolve) => setTimeout(resolve, 1_000))
    level = cpuBetween(first, sample(context)).otherCores
    if (level <= cores) break
  }
  return level
}

export async function runStep (step: StepDef, context: StepContext): Promise<StepMeasurement> {
  const job = step.job(context.target, context.timing)
  const measurement = job.kind === 'idle' ? await measureIdle(context, job) : await measureWindow(context, job)
  measurement.step = step.id
  return measurement
}
