import { CloseCode } from './close-codes'
import { RateLimiter } from './rate-limit'
import type { Outgoing } from '../registry/types'
import type { FastifyBaseLogger } from 'fastify'
import type { Connection, Engine, EngineName, PolicyLeg, RelaySettings, RouteRelaySettings } from './types'

/**
 * One connection's settings: its route's, and its own. The fields are listed one by one rather
 * than spread (`{ ...route, onEnd }`): a spread with a closure in it gives V8 a new hidden class
 * per object, i.e. a map, descriptors and a property store per connection (~0.4 KiB); listed,
 * every connection's settings share one.
 */
export function relaySettings (route: RouteRelaySettings, backendMaxPayload: number, log: FastifyBaseLogger, onEnd: (connection: Connection) => void): RelaySettings {
  const { maxPayload, highWaterMark, idleTimeout, slowConsumerTimeout, slowConsumerCloseCode, rateLimit } = route
  return { maxPayload, highWaterMark, idleTimeout, slowConsumerTimeout, slowConsumerCloseCode, rateLimit, backendMaxPayload, log, onEnd }
}

/**
 * A relayed connection: the policy both engines share around the bytes — the idle timer, the rate
 * limiter, the slow-consumer timer, policy closes (`end`) and the one call to `onEnd` — composed
 * with the engine that moves them (`startEngine`), which reads, writes and closes the legs.
 */
export class RelayConnection implements Connection {
  readonly openedAt = Date.now()
  lastActiveAt = this.openedAt
  /** Client messages, pings and pongs dropped by the rate limit (`onExceeded: 'drop'`). */
  dropped = 0
  /** Why the gateway closed it on its own (`end`, idle timer), if it did. */
  policy: string | undefined
  readonly rateLimiter: RateLimiter | undefined
  readonly engine: Engine
  private readonly idleTimer: NodeJS.Timeout | undefined
  private slowConsumerTimer: NodeJS.Timeout | undefined
  /** The client was closed for going over its rate limit. */
  private closedForRate = false

  constructor (readonly settings: RelaySettings, startEngine: (connection: RelayConnection) => Engine) {
    if (settings.rateLimit !== false) this.rateLimiter = new RateLimiter(settings.rateLimit)
    if (settings.idleTimeout > 0) {
      this.idleTimer = setTimeout(() => {
        this.policy ??= 'idle timeout'
        this.closeBoth(CloseCode.GOING_AWAY, 'idle timeout', CloseCode.GOING_AWAY, 'idle timeout')
      }, settings.idleTimeout).unref()
    }
    this.engine = startEngine(this)
  }

  get engineName (): EngineName {
    return this.engine.name
  }

  get client (): PolicyLeg {
    return this.engine.client
  }

  get backend (): PolicyLeg {
    return this.engine.backend
  }

  /** Data moved: the idle timer starts again. */
  active (): void {
    this.lastActiveAt = Date.now()
    this.idleTimer?.refresh()
  }

  push (message: Outgoing): void {
    this.engine.push(message)
    this.active()
  }

  /** Closes both legs at once with codes the gateway chose. */
  closeBoth (clientCode: number, clientReason: string, backendCode: number, backendReason: string): void {
    const { engine } = this
    engine.backend.planned = { code: backendCode, reason: backendReason }
    engine.closeLeg(engine.client, clientCode, clientReason)
    engine.closeLeg(engine.backend, backendCode, backendReason)
  }

  /**
   * Starts a graceful close from the gateway's side (shutdown): the client leg is closed first and
   * the backend leg only once the client's close arrives, so every message the client sent before
   * it saw the close still reaches the backend.
   */
  shutdown (code: number, reason: string): void {
    this.engine.backend.planned = { code, reason }
    this.engine.closeLeg(this.engine.client, code, reason)
  }

  /** Closes the client with this code and reason (a policy decision) and the backend with 1001. */
  end (code: number, reason: string): void {
    this.policy ??= reason
    this.closeBoth(code, reason, CloseCode.GOING_AWAY, 'going away')
  }

  terminate (): void {
    this.engine.terminate()
  }

  heartbeat (): void {
    this.engine.heartbeat()
  }

  /**
   * Charges a whole unit the client sent — a message, a ping or a pong — to its rate limit. True
   * when it may pass; over the limit it is dropped and counted (`onExceeded: 'drop'`) or the
   * client is closed 1008 `rate limit`, and false is returned.
   */
  admit (messages: number, bytes: number): boolean {
    if (this.rateLimiter === undefined || this.rateLimiter.take(messages, bytes)) return true
    if (this.dropsOverLimit) this.dropped++
    else this.overLimit()
    return false
  }

  /**
   * The client went over its rate limit (`onExceeded: 'close'`): it is closed 1008 `rate limit`,
   * and gets one more second's allowance for what it sent before it saw that close. A client that
   * goes over it again — one that keeps flooding after being told to go — is cut, as ws cuts a
   * peer that leaves too many pongs unread: reading it on until the close timeout would let it
   * keep the gateway busy.
   */
  overLimit (): void {
    if (this.closedForRate) return this.engine.cut(this.engine.client)
    this.closedForRate = true
    ;(this.rateLimiter as RateLimiter).refill()
    this.end(CloseCode.POLICY, 'rate limit')
  }

  /** Whether the rate limit drops (rather than closes on) what goes over it. */
  get dropsOverLimit (): boolean {
    return this.settings.rateLimit !== false && this.settings.rateLimit.onExceeded === 'drop'
  }

  /** The backend leg was paused because the client is not reading: start its grace period. */
  clientBackedUp (): void {
    if (this.settings.slowConsumerTimeout > 0) {
      this.slowConsumerTimer = setTimeout(() => this.end(this.settings.slowConsumerCloseCode, 'slow consumer'), this.settings.slowConsumerTimeout).unref()
    }
  }

  /** The client caught up: the backend leg is read again. */
  clientCaughtUp (): void {
    clearTimeout(this.slowConsumerTimer)
  }

  /** Both legs are closed: stop the timers and tell the gateway, once. */
  finish (): void {
    clearTimeout(this.idleTimer)
    clearTimeout(this.slowConsumerTimer)
    this.settings.onEnd(this)
  }
}
