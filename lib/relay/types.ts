import type { FastifyBaseLogger } from 'fastify'
import type { RateLimitOptions, RelayEngine } from '../options/types'
import type { Outgoing } from '../registry/types'

/** What moves a connection's data: a relay engine, or message mode's engine (lib/messages/engine.ts). */
export type EngineName = RelayEngine | 'messages'

/** Frames and bytes that came in on one leg. */
export interface Traffic {
  frames: number
  bytes: number
}

/** What the gateway reads of each leg of a connection, whatever engine relays it. */
export interface LegState {
  readonly name: LegName
  readonly traffic: Traffic
  /** The close code this leg ended with (1005 none, 1006 abnormal), once closed. */
  readonly code: number | undefined
}

/**
 * A relayed connection, as the registry and the route see it: a `RelayConnection` around either
 * engine (`Engine`).
 */
export interface Connection {
  readonly client: LegState
  readonly backend: LegState
  readonly openedAt: number
  /** The engine relaying it: `'passthrough'`, or `'ws'` (asked for, or the fallback, see `startRelay`). */
  readonly engineName: EngineName
  /** Client messages, pings and pongs dropped by the rate limit (`onExceeded: 'drop'`). */
  readonly dropped: number
  /** Why the gateway closed it on its own (`'rate limit'`, `'slow consumer'`, `'idle timeout'`, `'token expired'`), if it did. */
  readonly policy: string | undefined
  /** Closes the client with this code and reason (a policy decision) and the backend with 1001. */
  end: (code: number, reason: string) => void
  /** Graceful close from the gateway's side: the client leg first, the backend leg after it. */
  shutdown: (code: number, reason: string) => void
  /** Ends both legs at once, without a close handshake. */
  terminate (): void
  /** One heartbeat tick: terminate a leg that missed the last pong, ping the others. */
  heartbeat (): void
  /** Sends the client a message of the gateway's own (see `Engine.push`). */
  push (message: Outgoing): void
  /** Milliseconds since the epoch of the last message either way. */
  readonly lastActiveAt: number
}

/** What a relay needs from the gateway that runs it: the same for every connection of a route. */
export interface RouteRelaySettings {
  /** The largest message the client may send (the gateway's `maxPayload`). */
  readonly maxPayload: number
  readonly highWaterMark: number
  readonly idleTimeout: number
  /** Milliseconds the client may leave the backend paused before it is closed (0 = never). */
  readonly slowConsumerTimeout: number
  readonly slowConsumerCloseCode: number
  readonly rateLimit: Readonly<Required<RateLimitOptions>> | false
}

/** What a relay needs from the gateway that runs it: its route's settings and its own (see `relaySettings`). */
export interface RelaySettings extends RouteRelaySettings {
  /** The largest message the backend may send (its own `maxPayload`, by default the gateway's). */
  readonly backendMaxPayload: number
  readonly log: FastifyBaseLogger
  /** Called once, when both legs are closed. */
  readonly onEnd: (connection: Connection) => void
}

/** A close the gateway has decided on for a leg, instead of mirroring the other leg's. */
export interface PlannedClose {
  code: number
  reason: string
}

export type LegName = 'client' | 'backend'

/** A leg as the connection's policy sees it: its state, and a close the gateway has planned for it. */
export type PolicyLeg = LegState & { planned?: PlannedClose }

/**
 * How one connection's frames or messages move: the ws engine (`relay/ws`) or the passthrough
 * engine (`relay/passthrough`). The connection (`RelayConnection`) runs the policy around it.
 */
export interface Engine {
  readonly name: EngineName
  readonly client: PolicyLeg
  readonly backend: PolicyLeg
  /** Sends a leg a close frame (no code: no status) unless it is closing already. */
  closeLeg (leg: PolicyLeg, code: number | undefined, reason: string | Buffer): void
  /** Ends both legs at once, without a close handshake. */
  terminate (): void
  /** Ends one leg's connection at once, without a close handshake, and reads nothing more of it. */
  cut (leg: PolicyLeg): void
  /** One heartbeat tick: ends a leg that missed the last pong, pings the others. */
  heartbeat (): void
  /**
   * Sends the client a message of the gateway's own, between the backend's messages. Throws
   * `ConnectionGoneError` once the client is closing, `ClientBufferFullError` when more than
   * `highWaterMark` bytes already wait for it.
   */
  push (message: Outgoing): void
}
