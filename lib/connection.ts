import { CloseCode } from './close-codes'
import { RateLimiter } from './rate-limit'
import type { Connection, LegState, PlannedClose, RelaySettings } from './relay'

/**
 * What both relay engines share: the policy around the bytes. The idle timer, the rate limiter,
 * the slow-consumer timer, policy closes (`end`) and the one call to `onEnd` live here; how a
 * leg is read, written and closed is each engine's own (`closeLeg`).
 */
export abstract class RelayConnection implements Connection {
  abstract readonly client: LegState & { planned?: PlannedClose }
  abstract readonly backend: LegState & { planned?: PlannedClose }
  readonly openedAt = Date.now()
  dropped = 0
  protected readonly idleTimer: NodeJS.Timeout | undefined
  protected readonly rateLimiter: RateLimiter | undefined
  private slowConsumerTimer: NodeJS.Timeout | undefined

  constructor (protected readonly settings: RelaySettings) {
    if (settings.rateLimit !== false) this.rateLimiter = new RateLimiter(settings.rateLimit)
    if (settings.idleTimeout > 0) {
      this.idleTimer = setTimeout(() => this.closeBoth(CloseCode.GOING_AWAY, 'idle timeout', CloseCode.GOING_AWAY, 'idle timeout'), settings.idleTimeout).unref()
    }
  }

  /** Sends a leg a close frame (no code: no status) unless it is closing already. */
  protected abstract closeLeg (leg: LegState, code: number | undefined, reason: string | Buffer): void

  abstract terminate (): void
  abstract heartbeat (): void

  /** Closes both legs at once with codes the gateway chose. */
  protected closeBoth (clientCode: number, clientReason: string, backendCode: number, backendReason: string): void {
    this.backend.planned = { code: backendCode, reason: backendReason }
    this.closeLeg(this.client, clientCode, clientReason)
    this.closeLeg(this.backend, backendCode, backendReason)
  }

  /**
   * Starts a graceful close from the gateway's side (shutdown): the client leg is closed first and
   * the backend leg only once the client's close arrives, so every message the client sent before
   * it saw the close still reaches the backend.
   */
  shutdown (code: number, reason: string): void {
    this.backend.planned = { code, reason }
    this.closeLeg(this.client, code, reason)
  }

  /** Closes the client with this code and reason (a policy decision) and the backend with 1001. */
  end (code: number, reason: string): void {
    this.closeBoth(code, reason, CloseCode.GOING_AWAY, 'going away')
  }

  /** Whether the rate limit drops (rather than closes on) what goes over it. */
  protected get dropsOverLimit (): boolean {
    return this.settings.rateLimit !== false && this.settings.rateLimit.onExceeded === 'drop'
  }

  /** The backend leg was paused because the client is not reading: start its grace period. */
  protected clientBackedUp (): void {
    if (this.settings.slowConsumerTimeout > 0) {
      this.slowConsumerTimer = setTimeout(() => this.end(this.settings.slowConsumerCloseCode, 'slow consumer'), this.settings.slowConsumerTimeout).unref()
    }
  }

  /** The client caught up: the backend leg is read again. */
  protected clientCaughtUp (): void {
    clearTimeout(this.slowConsumerTimer)
  }

  /** Both legs are closed: stop the timers and tell the gateway, once. */
  protected finish (): void {
    clearTimeout(this.idleTimer)
    clearTimeout(this.slowConsumerTimer)
    this.settings.onEnd(this)
  }
}
