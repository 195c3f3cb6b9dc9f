/**
 * What the cluster bench's processes say to each other over IPC (orchestrator ↔ server nodes,
 * orchestrator ↔ client processes), the messages the servers push, and the clock they are timed
 * on. Kept in one place so every end agrees on their shape.
 */

/**
 * Milliseconds (µs resolution) on CLOCK_MONOTONIC, which Node's hrtime reads and which every
 * process of the machine shares: a time taken in a server node and one taken in a client process
 * can be subtracted.
 */
export function monotonicMs (): number {
  return Number(process.hrtime.bigint() / 1000n) / 1000
}

/** Size of every pushed message (text, ASCII), so both peers move the same bytes. */
export const PAYLOAD_BYTES = 64

function padded (text: string): string {
  return text.padEnd(PAYLOAD_BYTES, 'x')
}

/** A message for one connection: its sequence number and when the send was called. */
export function latencyPayload (seq: number, calledAt: number): string {
  return padded(`L ${seq} ${calledAt.toFixed(3)} `)
}

/** A broadcast message: its sequence number (the node records when it was called). */
export function broadcastPayload (seq: number): string {
  return padded(`B ${seq} `)
}

export type Payload = { kind: 'L', seq: number, calledAt: number } | { kind: 'B', seq: number }

export function parsePayload (text: string): Payload | undefined {
  const [kind, seq, calledAt] = text.split(' ', 3)
  if (text.length !== PAYLOAD_BYTES) return undefined
  if (kind === 'L') return { kind, seq: Number(seq), calledAt: Number(calledAt) }
  if (kind === 'B') return { kind, seq: Number(seq) }
  return undefined
}

/** The two servers compared. */
export type PeerKind = 'gateway' | 'socketio'

// Orchestrator → server node (gateway-node.ts, socketio-node.ts; see control.ts).

/**
 * Send `count` messages to connection `id` through the API, `burst` at a time (a burst's calls
 * are issued back-to-back, then awaited), with `thinkMs` between bursts.
 */
export interface SendRun {
  type: 'send-run'
  id: string
  firstSeq: number
  count: number
  burst: number
  thinkMs: number
}

/** Calls the API rejected: their sequence numbers, and the first error as the report shows it. */
export interface Rejections {
  rejected: number[]
  firstError?: string
}

export interface SendRunDone extends Rejections {
  type: 'send-run-done'
}

/** Broadcast `count` messages back-to-back (sequence numbers from `firstSeq`), each call once the previous one has returned. */
export interface BroadcastRun {
  type: 'broadcast-run'
  firstSeq: number
  count: number
}

export interface BroadcastDone extends Rejections {
  type: 'broadcast-done'
  /** monotonicMs() just before the first call, and once the last one had returned. */
  calledAt: number
  returnedAt: number
  /** Connections the gateway's API says each resolved call was addressed to (none for Socket.IO). */
  connections: number[]
}

/** How many connections the peer's registry lists over every instance; answered with `Count`. */
export interface CountRequest {
  type: 'count'
}

export interface Count {
  type: 'count'
  connections: number
}

// Orchestrator → client process (clients.ts).

export interface OpenTarget {
  url: string
  count: number
}

/** Open connections (at most `concurrency` handshakes at once) and answer `Opened`. */
export interface OpenRequest {
  type: 'open'
  peer: PeerKind
  targets: OpenTarget[]
  /** Request headers of a gateway client (token, backend id). */
  headers: Record<string, string>
  concurrency: number
  /**
   * Socket.IO only: make the first connection of each target a socket.io-client (the rest speak
   * Engine.IO over raw ws), to check that what the raw clients count is what real clients get.
   */
  witness: boolean
}

export interface Opened {
  type: 'opened'
  /** Per connection, in order: the gateway's `x-connection-id`, or the Socket.IO socket id. */
  ids: string[]
}

/**
 * Answer `LatencySamples` once the messages numbered `firstSeq` … `firstSeq + count - 1` have all
 * arrived, but for those whose send was `rejected`, or after `timeoutMs` (their samples are then
 * forgotten).
 */
export interface LatencyCollect {
  type: 'latency-collect'
  firstSeq: number
  count: number
  rejected: number[]
  timeoutMs: number
}

export interface LatencySamples {
  type: 'latency-samples'
  /** ms from the call on the sending node to the message at the client, of the sends that resolved. */
  samples: number[]
  /** Messages of resolved sends that did not arrive in time. */
  missing: number
  /** Messages of rejected sends that arrived all the same (by the time the others had). */
  rejectedArrived: number
}

/** A broadcast has reached every connection of this client process (sent unasked). */
export interface Delivered {
  type: 'delivered'
  seq: number
  firstAt: number
  lastAt: number
}

/** Close every connection; answer `ClientReport`. */
export interface CloseAll {
  type: 'close-all'
}

/** Answer `ClientReport` with the counts so far. */
export interface ReportRequest {
  type: 'report'
}

export interface ClientReport {
  type: 'client-report'
  connections: number
  /** Broadcasts received, per sequence number seen. */
  received: Record<string, number>
  /** Duplicates, gaps or reordering per connection, unparsable messages, unexpected closes. */
  errors: number
  firstError?: string
}

export type ClientRequest = OpenRequest | LatencyCollect | CloseAll | ReportRequest
export type NodeRequest = SendRun | BroadcastRun | CountRequest
