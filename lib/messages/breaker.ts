import { CircuitOpenError } from '../errors'
import type { CircuitBreakerOptions } from '../options/message-types'
import { withDetails } from './envelope'

/**
 * A route's circuit breaker, shared by all connections: after `failures` backend failures in a
 * row it opens and refuses requests (`CIRCUIT_OPEN`, with `retryAfter`) for `resetAfter` ms; then
 * one trial request goes through, and its outcome closes or reopens it. A request whose client
 * left has no outcome: it gives back the trial without a verdict, so client disconnects can never
 * open a breaker.
 */
export class CircuitBreaker {
  private failures = 0
  private openUntil = 0
  private trialRunning = false

  constructor (private readonly settings: Required<CircuitBreakerOptions>) {}

  /** Lets a request through, or throws `CIRCUIT_OPEN`. */
  admit (): void {
    if (this.failures < this.settings.failures) return
    const left = this.openUntil - Date.now()
    if (left > 0 || this.trialRunning) {
      throw withDetails(new CircuitOpenError(), { retryAfter: Math.max(1, Math.ceil(left / 1000)) })
    }
    this.trialRunning = true
  }

  /** The backend answered (a 4xx too: it is up and deciding). */
  success (): void {
    this.failures = 0
    this.trialRunning = false
  }

  /** The backend failed (5xx, unreachable, timed out). */
  failure (): void {
    this.trialRunning = false
    this.failures++
    if (this.failures >= this.settings.failures) this.openUntil = Date.now() + this.settings.resetAfter
  }

  /** The request ended without a verdict (its client left). */
  release (): void {
    this.trialRunning = false
  }
}
