/**
 * IPC messages between the orchestrator (run.ts) and its children: the echo backend, the relay
 * peers and the load generator. Kept in one place so both ends agree on their shape.
 */

/** Sent by the backend and every Node peer once listening on 127.0.0.1. */
export interface ReadyMessage {
  type: 'ready'
  port: number
}

/** Parent → Node server child: run a full GC, then answer with MemoryMessage. */
export interface GcRequest {
  type: 'gc'
}

export interface MemoryMessage {
  type: 'memory'
  /** false when the child was started without --expose-gc. */
  gc: boolean
  rssKiB: number
}

/** Parent → Node server child started with BENCH_GC_STATS=1: answer with GcStatsMessage. */
export interface GcStatsRequest {
  type: 'gc-stats'
}

/** Collections since the child started (counts and milliseconds), heap and RSS now. */
export interface GcStatsMessage {
  type: 'gc-stats'
  scavenges: number
  scavengeMs: number
  markCompacts: number
  markCompactMs: number
  heapUsedKiB: number
  /** V8's young generation (both semi-spaces), which it grows after busy scavenges. */
  newSpaceKiB: number
  rssKiB: number
}

/** What the load generator connects to and how it authenticates. */
export interface Target {
  url: string
  headers: Record<string, string>
}

export interface ThroughputJob {
  kind: 'throughput'
  target: Target
  size: number
  binary: boolean
  connections: number
  inFlight: number
  warmupMs: number
  measureMs: number
}

export interface LatencyJob {
  kind: 'latency'
  target: Target
  size: number
  binary: boolean
  connections: number
  thinkMs: number
  warmupMs: number
  measureMs: number
}

export interface HandshakeJob {
  kind: 'handshakes'
  target: Target
  loops: number
  warmupMs: number
  measureMs: number
}

/** Open `connections` sockets, one echo each, report 'idle-open', hold them until 'release'. */
export interface IdleJob {
  kind: 'idle'
  target: Target
  connections: number
  openConcurrency: number
  timeoutMs: number
}

export type Job = ThroughputJob | LatencyJob | HandshakeJob | IdleJob

export interface JobRequest {
  type: 'job'
  job: Job
}

export interface ReleaseRequest {
  type: 'release'
}

/** Load generator → parent: the measured window has just started (parent samples /proc). */
export interface WindowStart {
  type: 'window-start'
}

/** Load generator → parent: the measured window has just ended (parent samples /proc). */
export interface WindowEnd {
  type: 'window-end'
}

export interface IdleOpen {
  type: 'idle-open'
  opened: number
}

export interface JobResult {
  type: 'result'
  /** Completed round trips (or handshakes) inside the measured window. */
  count: number
  /** Length of the measured window in seconds, as timed by the load generator. */
  seconds: number
  /** Latency samples in ms (latency jobs only), summarised by the load generator. */
  p50Ms?: number
  p99Ms?: number
  samples?: number
  /** Echoes whose length or text/binary flag did not match, plus unexpected closes/errors. */
  errors: number
  firstError?: string
}

export interface JobFailed {
  type: 'failed'
  message: string
}

export type LoadMessage = WindowStart | WindowEnd | IdleOpen | JobResult | JobFailed
