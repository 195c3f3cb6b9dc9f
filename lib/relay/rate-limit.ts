import type { RateLimitOptions } from '../options/types'

/**
 * Two token buckets — messages and bytes — refilled continuously at their rates per second and
 * holding at most one second's worth, so a client may burst up to its per-second allowance.
 */
export class RateLimiter {
  private messages: number
  private bytes: number
  private last = performance.now()

  constructor (private readonly limit: Readonly<Required<RateLimitOptions>>) {
    this.messages = limit.messagesPerSecond
    this.bytes = limit.bytesPerSecond
  }

  /** Takes one message of `size` bytes; false when either bucket is short (and takes nothing). */
  take (size: number): boolean {
    const now = performance.now()
    const seconds = (now - this.last) / 1000
    this.last = now
    this.messages = Math.min(this.limit.messagesPerSecond, this.messages + seconds * this.limit.messagesPerSecond)
    this.bytes = Math.min(this.limit.bytesPerSecond, this.bytes + seconds * this.limit.bytesPerSecond)
    if (this.messages < 1 || this.bytes < size) return false
    this.messages -= 1
    this.bytes -= size
    return true
  }
}
