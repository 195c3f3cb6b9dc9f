import type { FastifyBaseLogger } from 'fastify'
import type { GatewayConnection } from '../../options/message-types'
import type { RequestSignal } from '../signal'

/** A WebSocket route's upstream, as the client connection that owns it drives it. */
export interface UpstreamHandle {
  /** Closes it with this code (none: 1005) at the gateway's initiative: the client is not told. */
  close: (code?: number, reason?: string | Buffer) => void
  terminate: () => void
  /** Pings it, or terminates it when the last ping went unanswered. */
  heartbeat: () => void
  /** Stops (or starts again) reading it, while the client is backed up. */
  pause: () => void
  resume: () => void
}

/** What a WebSocket route keeps per client connection, and how it reaches that client. */
export interface Session {
  /** Open (or opening) upstreams of this connection, by route. */
  readonly upstreams: Map<string, UpstreamHandle>
  /** Sends the client something a route's upstream said. */
  upstreamMessage: (route: string, data: Buffer, isBinary: boolean) => void
  /** Tells the client a route's upstream failed after it had opened. */
  upstreamFailed: (route: string) => void
}

/** One message on its way to a backend. */
export interface BackendRequest {
  /** The route that takes it (`$default` included). */
  readonly route: string
  /** The key the message asked for (`x-route-key`; differs from `route` under `$default`). */
  readonly key: string
  readonly message: unknown
  /** The message as JSON text. */
  readonly body: string
  readonly correlationId: string | number | undefined
  readonly connection: GatewayConnection
  readonly session: Session
  /**
   * Aborted when the client leaves or the request times out; a backend must then settle at once
   * (how it settles does not matter: the abort's reason is the answer).
   */
  readonly signal: RequestSignal
  /** When the gateway stops waiting (epoch ms). */
  readonly deadline: number
  readonly log: FastifyBaseLogger
}

/** A backend's answer: a status and `data` as JSON text. */
export interface BackendReply {
  status: number
  data: string
}

/** Sends a routed message; resolves with the answer, or nothing when the route answers by pushing. */
export type Backend = (request: BackendRequest) => Promise<BackendReply | undefined>
