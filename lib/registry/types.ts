/** An opaque connection id, unique across instances; it names the instance that owns it. */
export type ConnectionId = string

/** What the registry knows of a connection (`fastify.wsGateway.get()`, `list()`). */
export interface ConnectionInfo {
  id: ConnectionId
  /** The instance (`cluster.nodeId`) that holds the client's socket. */
  node: string
  /** The gateway path the client connected to. */
  path: string
  backendId?: string
  /** The token's `sub`, when it has one. */
  sub?: string
  /** ISO 8601. */
  connectedAt: string
  /** ISO 8601: the last message either way (the registry's view may lag by `cluster.nodeTtl` / 3). */
  lastActiveAt: string
  sourceIp: string
  userAgent?: string
}

export interface SendOptions {
  /** Send as a binary frame (default: strings as text, Buffers as binary). */
  binary?: boolean
}

export interface BroadcastOptions extends SendOptions {
  /** Only connections of this gateway path. */
  path?: string
  /** Only connections relayed to this backend ID. */
  backendId?: string
}

export interface ListQuery {
  sub?: string
  backendId?: string
  path?: string
  /** Items per page, 1 to 1000. Default 100. */
  limit?: number
  /** The `cursor` of the previous page. */
  cursor?: string
}

export interface ConnectionPage {
  items: ConnectionInfo[]
  /** Present when there may be more: pass it to the next `list()`. */
  cursor?: string
}

/** How many connections a fan-out (`sendToUser`, `broadcast`, `closeUser`) was addressed to. */
export interface FanOut {
  connections: number
}

/** The connection registry API on `fastify.wsGateway`. Rejections are coded errors (see the README). */
export interface ConnectionApi {
  send: (id: ConnectionId, data: string | Buffer, opts?: SendOptions) => Promise<void>
  sendToUser: (sub: string, data: string | Buffer, opts?: SendOptions) => Promise<FanOut>
  broadcast: (data: string | Buffer, opts?: BroadcastOptions) => Promise<FanOut>
  close: (id: ConnectionId, code?: number, reason?: string) => Promise<void>
  closeUser: (sub: string, code?: number, reason?: string) => Promise<FanOut>
  get: (id: ConnectionId) => Promise<ConnectionInfo | undefined>
  list: (query?: ListQuery) => Promise<ConnectionPage>
}

/** One message on its way to clients: validated once, written as is. */
export interface Outgoing {
  readonly data: Buffer
  readonly binary: boolean
}

/** A close on its way to a client: a code a server may send and a reason of at most 123 bytes. */
export interface OutgoingClose {
  readonly code: number
  readonly reason: string
}

/**
 * A live connection on this instance, as the registry reaches it: its facts, and the two things
 * the API can do to it. `push` and `close` throw coded errors (`ConnectionGoneError`,
 * `ClientBufferFullError`); `push` writes whole messages, never inside one the backend is sending.
 */
export interface Member {
  readonly id: ConnectionId
  readonly path: string
  readonly backendId?: string
  readonly sub?: string
  /** Milliseconds since the epoch. */
  readonly connectedAt: number
  readonly sourceIp: string
  readonly userAgent?: string
  /** The largest message the client takes (its path's `maxPayload`). */
  readonly maxPayload: number
  /** Milliseconds since the epoch of the last message either way. */
  lastActiveAt: () => number
  push: (message: Outgoing) => void
  close: (close: OutgoingClose) => void
}

/** What `stats().cluster` reports, with `cluster` set. */
export interface ClusterStats {
  /** This instance's node id. */
  node: string
  /** Whether the last Redis exchange worked. */
  redisUp: boolean
  /** Times Redis went from answering to not answering. */
  outages: number
  /** Messages, closes and fan-outs appended to other nodes' inboxes. */
  remoteSends: number
  /** Inbox entries this node handled. */
  inboxHandled: number
  /** Milliseconds between the last handled inbox entry's append and its handling (Redis's clock); 0 before any. */
  inboxLagMs: number
}
