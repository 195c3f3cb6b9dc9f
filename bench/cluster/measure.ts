/**
 * The measurements of the cluster bench, run by bench/cluster.ts against processes it started:
 * send latency across instances, broadcast fan-out, handshakes on 1 and 2 workers. Each returns
 * figure values with the machine's load while they were taken.
 */
import { loadavg } from 'node:os'
import type { Child } from '../children.js'
import { livePids } from '../children.js'
import { percentile } from '../stats.js'
import { childPids, machineCpu, processesCpuSeconds } from '../proc.js'
import { STEPS, runStep } from '../steps.js'
import type { StepDef, Timing } from '../steps.js'
import { sleep, withTimeout } from '../ws-clients.js'
import type { FigureId } from './report.js'
import { ask } from './processes.js'
import type { RunSetup, Started } from './processes.js'
import type {
  BroadcastDone, BroadcastRun, ClientReport, Delivered, LatencySamples, OpenRequest, Opened, PeerKind, SendRun, SendRunDone
} from './protocol.js'
import { latencyPayload, monotonicMs } from './protocol.js'

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

/** Runs `work` and tells the load on the machine meanwhile. */
export async function underLoad<T> (work: () => Promise<T>): Promise<{ result: T, load: Load }> {
  const pids = livePids()
  const sample = (): { at: number, busy: number, ours: number } => {
    const self = process.cpuUsage()
    return { at: performance.now(), busy: machineCpu().busy, ours: processesCpuSeconds(pids) + (self.user + self.system) / 1e6 }
  }
  const loadAverage = loadavg()[0] ?? Number.NaN
  const first = sample()
  const result = await work()
  const last = sample()
  const others = Math.max(0, last.busy - first.busy - (last.ours - first.ours))
  return { result, load: { loadAverage, otherCores: others / Math.max(0.001, (last.at - first.at) / 1000) } }
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
  clients: Child[]
  setup: RunSetup
}

const urlOf = (peer: PeerKind, port: number): string => peer === 'gateway' ? `ws://127.0.0.1:${port}/ws` : `ws://127.0.0.1:${port}`

async function open (cluster: Cluster, client: Child, targets: OpenRequest['targets'], witness: boolean): Promise<string[]> {
  const request: OpenRequest = { type: 'open', peer: cluster.peer, targets, headers: cluster.setup.headers, concurrency: 50, witness }
  const timeoutMs = 60_000 + targets.reduce((sum, target) => sum + target.count, 0) * 20
  return (await ask<Opened>(client, request, 'opened', timeoutMs)).ids
}

/** Sequence numbers unique over a block, so no late message is mistaken for a later one. */
let nextSeq = 1
function seqRange (count: number): number {
  const first = nextSeq
  nextSeq += count
  return first
}

interface LatencyVariant {
  p50: FigureId
  p99: FigureId
  /** Who makes the call: the API of instance A or B, or an HTTP client POSTing to A's REST surface. */
  via: 'a' | 'b' | 'rest'
  burst: number
}

const LATENCY_VARIANTS: readonly LatencyVariant[] = [
  { p50: 'sendP50', p99: 'sendP99', via: 'a', burst: 1 },
  { p50: 'send16P50', p99: 'send16P99', via: 'a', burst: 16 },
  { p50: 'restP50', p99: 'restP99', via: 'rest', burst: 1 },
  { p50: 'localP50', p99: 'localP99', via: 'b', burst: 1 }
]

/** POSTs `count` messages to A's REST surface, one at a time; an answer other than 204 is a problem. */
async function restRun (cluster: Cluster, id: string, firstSeq: number, count: number, thinkMs: number, problems: Problems): Promise<void> {
  const url = `http://127.0.0.1:${cluster.a.port}/@connections/${encodeURIComponent(id)}`
  for (let seq = firstSeq; seq < firstSeq + count; seq++) {
    const response = await fetch(url, {
      method: 'POST',
      headers: { authorization: `Bearer ${cluster.setup.adminKey}`, 'content-type': 'text/plain' },
      body: latencyPayload(seq, monotonicMs())
    })
    await response.arrayBuffer()
    if (response.status !== 204) problems.push(`REST POST answered ${response.status}`)
    await sleep(thinkMs)
  }
}

async function latencyVariant (cluster: Cluster, id: string, variant: LatencyVariant, sizes: Sizes, problems: Problems): Promise<FigureValue[]> {
  const count = sizes.sends * (variant.burst > 1 ? 4 : 1)
  const firstSeq = seqRange(count)
  const { result: samples, load } = await underLoad(async () => {
    if (variant.via === 'rest') await restRun(cluster, id, firstSeq, count, sizes.thinkMs, problems)
    else {
      const run: SendRun = { type: 'send-run', id, firstSeq, count, burst: variant.burst, thinkMs: sizes.thinkMs }
      const done = await ask<SendRunDone>(variant.via === 'a' ? cluster.a.child : cluster.b.child, run, 'send-run-done', 120_000)
      if (done.errors > 0) problems.push(`${variant.p50}: ${done.errors} sends rejected, first: ${done.firstError ?? '?'}`)
    }
    return await ask<LatencySamples>(cluster.clients[0], { type: 'latency-collect', firstSeq, count, timeoutMs: 10_000 }, 'latency-samples', 20_000)
  })
  if (samples.missing > 0) problems.push(`${variant.p50}: ${samples.missing} of ${count} messages never arrived`)
  const sorted = Float64Array.from(samples.samples).sort()
  return [
    { figure: variant.p50, value: percentile(sorted, 0.5), load },
    { figure: variant.p99, value: percentile(sorted, 0.99), load }
  ]
}

/**
 * Send latency, from the call to the message at the client: one client on B; sends made on A (one
 * at a time, then 16 at once), through A's REST surface (gateway only: Socket.IO has none), and on
 * B itself (the same-instance reference). A warm-up run comes first.
 */
export async function measureLatency (cluster: Cluster, sizes: Sizes, problems: Problems, keep: Keep): Promise<void> {
  const client = cluster.clients[0]
  const [id] = await open(cluster, client, [{ url: urlOf(cluster.peer, cluster.b.port), count: 1 }], false)
  const warmup = seqRange(sizes.sends)
  await ask<SendRunDone>(cluster.a.child, { type: 'send-run', id, firstSeq: warmup, count: sizes.sends, burst: 1, thinkMs: 1 } satisfies SendRun, 'send-run-done', 120_000)
  await ask<LatencySamples>(client, { type: 'latency-collect', firstSeq: warmup, count: sizes.sends, timeoutMs: 10_000 }, 'latency-samples', 20_000)
  for (const variant of LATENCY_VARIANTS) {
    if (variant.via === 'rest' && cluster.peer !== 'gateway') continue
    keep(await latencyVariant(cluster, id, variant, sizes, problems))
  }
  await ask<ClientReport>(client, { type: 'close-all' }, 'client-report', 30_000)
}

/** Collects the client processes' `delivered` reports, so a broadcast's last arrival is known. */
class Deliveries {
  private readonly bySeq = new Map<number, Delivered[]>()
  private waiter: (() => void) | undefined
  private readonly listener = (message: Delivered): void => {
    if (message.type !== 'delivered') return
    this.bySeq.set(message.seq, [...(this.bySeq.get(message.seq) ?? []), message])
    this.waiter?.()
  }

  constructor (private readonly clients: readonly Child[]) {
    for (const client of clients) client.process.on('message', this.listener)
  }

  /** The latest arrival over every client process of every broadcast `seqs`, once all have arrived. */
  async lastArrival (seqs: readonly number[], timeoutMs: number): Promise<number> {
    const complete = (): boolean => seqs.every((seq) => (this.bySeq.get(seq)?.length ?? 0) === this.clients.length)
    if (!complete()) {
      const done = new Promise<void>((resolve) => { this.waiter = () => { if (complete()) resolve() } })
      await withTimeout(done, timeoutMs, `delivery of broadcasts ${seqs[0] ?? '?'}… to every connection`).finally(() => {
        this.waiter = undefined
      })
    }
    return Math.max(...seqs.flatMap((seq) => (this.bySeq.get(seq) ?? []).map((delivered) => delivered.lastAt)))
  }

  detach (): void {
    for (const client of this.clients) client.process.off('message', this.listener)
  }
}

/** Splits `count` connections as evenly as possible over `parts`. */
function split (count: number, parts: number): number[] {
  return Array.from({ length: parts }, (_, i) => Math.floor(count / parts) + (i < count % parts ? 1 : 0))
}

/** `count` broadcasts back-to-back on A; resolves with the call time and the last arrival anywhere. */
async function broadcastOnA (cluster: Cluster, deliveries: Deliveries, count: number, total: number, problems: Problems): Promise<{ calledAt: number, lastAt: number }> {
  const firstSeq = seqRange(count)
  const done = await ask<BroadcastDone>(cluster.a.child, { type: 'broadcast-run', firstSeq, count } satisfies BroadcastRun, 'broadcast-done', 60_000)
  if (done.errors > 0) problems.push(`broadcast: ${done.errors} calls rejected, first: ${done.firstError ?? '?'}`)
  if (done.connections !== undefined && done.connections.some((n) => n !== total)) {
    problems.push(`broadcast addressed ${done.connections.join(', ')} connections, not ${total}`)
  }
  const seqs = Array.from({ length: count }, (_, i) => firstSeq + i)
  return { calledAt: done.calledAt, lastAt: await deliveries.lastArrival(seqs, 60_000) }
}

/**
 * Broadcast fan-out: `connections` spread evenly over A and B, opened by both client processes
 * (for Socket.IO, one of each process's connections to each instance is a socket.io-client).
 * Then, from A: 3 warm-up broadcasts; `broadcasts` one at a time, each waiting for its last
 * delivery (figures: median time to the last delivery, and connections ÷ that time); and
 * `broadcasts` back-to-back (figures: every delivery ÷ time to the last one, and that time).
 */
export async function measureBroadcast (cluster: Cluster, sizes: Sizes, problems: Problems, keep: Keep): Promise<void> {
  const perClient = split(sizes.connections, cluster.clients.length)
  await Promise.all(cluster.clients.map(async (client, i) => {
    const [toA, toB] = split(perClient[i] ?? 0, 2)
    await open(cluster, client, [{ url: urlOf(cluster.peer, cluster.a.port), count: toA ?? 0 }, { url: urlOf(cluster.peer, cluster.b.port), count: toB ?? 0 }], true)
  }))
  const total = sizes.connections
  const deliveries = new Deliveries(cluster.clients)
  try {
    for (let i = 0; i < 3; i++) await broadcastOnA(cluster, deliveries, 1, total, problems)
    const { result: lasts, load: oneLoad } = await underLoad(async () => {
      const lasts: number[] = []
      for (let i = 0; i < sizes.broadcasts; i++) {
        const { calledAt, lastAt } = await broadcastOnA(cluster, deliveries, 1, total, problems)
        lasts.push(lastAt - calledAt)
        await sleep(20)
      }
      return lasts
    })
    const median = percentile(Float64Array.from(lasts).sort(), 0.5)
    keep([
      { figure: 'oneLastMs', value: median, load: oneLoad },
      { figure: 'oneRate', value: total / (median / 1000), load: oneLoad }
    ])
    const { result: burst, load: burstLoad } = await underLoad(async () => await broadcastOnA(cluster, deliveries, sizes.broadcasts, total, problems))
    const burstMs = burst.lastAt - burst.calledAt
    keep([
      { figure: 'burstRate', value: total * sizes.broadcasts / (burstMs / 1000), load: burstLoad },
      { figure: 'burstLastMs', value: burstMs, load: burstLoad }
    ])
  } finally {
    deliveries.detach()
    for (const client of cluster.clients) {
      const report = await ask<ClientReport>(client, { type: 'close-all' }, 'client-report', 30_000)
      if (report.errors > 0) problems.push(`client process: ${report.errors} errors, first: ${report.firstError ?? '?'}`)
    }
  }
}

/** The handshake figure's id for a gateway on `workers` node:cluster workers (0: one plain process). */
export function handshakeFigure (workers: number): FigureId {
  return workers === 0 ? 'handshakesSolo' : workers === 1 ? 'handshakes1' : 'handshakes2'
}

/**
 * Handshakes per second against a gateway on `workers` workers with its registry on Redis: the
 * main bench's handshake step (load.ts, 16 loops of open → close, JWT verified, backend opened
 * first), with the gateway's processes and Redis charged as the peer's CPU.
 */
export async function measureHandshakes (
  gateway: Started, backend: Started, redis: Started, load: Child, setup: RunSetup, workers: number, timing: Timing, problems: Problems, keep: Keep
): Promise<void> {
  const step = STEPS.find((candidate) => candidate.id === 'handshakes') as StepDef
  const loadAverage = loadavg()[0] ?? Number.NaN
  const measurement = await runStep(step, {
    load,
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
  keep([{ figure: handshakeFigure(workers), value: measurement.rate, load: { loadAverage, otherCores: measurement.otherCores } }])
}
