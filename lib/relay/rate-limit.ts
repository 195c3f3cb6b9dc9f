import type { RateLimitOptions } from '../options/types'

/**
 * Two token buckets — messages and bytes — refilled continuously at their rates per second and
 * holding at most one second's worth, so a client may burst up to its per-second allowance.
 *
 * Both engines charge the same units: one message per data message (a fragmented one counts
 * once; its frames' bytes are charged as they come) and one per ping or pong, with its payload.
 */
export class RateLimiter {
  private messages: number
  private bytes: number
  private last = performance.now()

  constructor (private readonly limit: Readonly<Required<RateLimitOptions>>) {
    this.messages = limit.messagesPerSecond
    this.bytes = limit.bytesPerSecond
  }

  /** Takes `messages` (0 for the rest of a message) and `size` bytes; false when either bucket is short (and takes nothing). */
  take (messages: number, size: number): boolean {
    const now = performance.now()
    const seconds = (now - this.last) / 1000
    this.last = now
    this.messages = Math.min(this.limit.messagesPerSecond, this.messages + seconds * this.limit.messagesPerSecond)
    this.bytes = Math.min(this.limit.bytesPerSecond, this.bytes + seconds * this.limit.bytesPerSecond)
    if (this.messages < messages || this.bytes < size) return false
    this.messages -= messages
    this.bytes -= size
    return true
  }

  /** Fills both buckets: one more second's allowance. */
  refill (): void {
    this.messages = this.limit.messagesPerSecond
    this.bytes = this.limit.bytesPerSecond
  }

  /** Whole seconds (at least 1) until the message bucket holds one message again. */
  secondsUntilNext (): number {
    return Math.max(1, Math.ceil((1 - this.messages) / this.limit.messagesPerSecond))
  }
}
