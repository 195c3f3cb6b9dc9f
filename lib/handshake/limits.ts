import type { FastifyReply } from 'fastify'
import { AtCapacityError, TooManyConnectionsError } from '../errors'

/** The connection limits of one gateway registration (0 = no limit). */
export interface ConnectionLimitSettings {
  readonly maxConnections: number
  readonly maxConnectionsPerIp: number
  readonly maxConnectionsPerSubject: number
  /** Seconds a refused client is told to wait, in `Retry-After`. */
  readonly retryAfter: number
}

/**
 * Counts connections — open ones and those still in their handshake, so a burst of upgrades
 * cannot slip past a limit while their backends connect — by client IP and by token subject.
 * Each admitted upgrade holds a `Slot` until its client socket closes.
 */
export class ConnectionLimits {
  private total = 0
  private readonly byIp = new Map<string, number>()
  private readonly bySubject = new Map<string, number>()

  constructor (private readonly settings: ConnectionLimitSettings) {}

  /** Admits an upgrade by IP and against the total; throws 503 or 429 with Retry-After. */
  admit (ip: string, reply: FastifyReply): Slot {
    const { maxConnections, maxConnectionsPerIp } = this.settings
    if (maxConnections > 0 && this.total >= maxConnections) this.refuse(reply, new AtCapacityError())
    if (maxConnectionsPerIp > 0 && (this.byIp.get(ip) ?? 0) >= maxConnectionsPerIp) this.refuse(reply, new TooManyConnectionsError('IP address'))
    this.total++
    increment(this.byIp, ip)
    return new Slot(this, ip)
  }

  /** Adds the token subject to an admitted upgrade; throws 429 with Retry-After. */
  admitSubject (slot: Slot, subject: string, reply: FastifyReply): void {
    const { maxConnectionsPerSubject } = this.settings
    if (maxConnectionsPerSubject > 0 && (this.bySubject.get(subject) ?? 0) >= maxConnectionsPerSubject) {
      this.refuse(reply, new TooManyConnectionsError('subject'))
    }
    increment(this.bySubject, subject)
    slot.subject = subject
  }

  /** @internal Called by `Slot.release`. */
  releaseSlot (slot: Slot): void {
    this.total--
    decrement(this.byIp, slot.ip)
    if (slot.subject !== undefined) decrement(this.bySubject, slot.subject)
  }

  private refuse (reply: FastifyReply, err: Error): never {
    retryLater(reply, this.settings.retryAfter, err)
  }
}

/** Throws a refusal that tells the client when to come back (`Retry-After`, in seconds). */
export function retryLater (reply: FastifyReply, seconds: number, err: Error): never {
  reply.header('retry-after', String(seconds))
  throw err
}

/** One admitted connection's share of the limits, given back when its client socket closes. */
export class Slot {
  subject: string | undefined

  constructor (private readonly limits: ConnectionLimits, readonly ip: string) {}

  release (): void {
    this.limits.releaseSlot(this)
  }
}

function increment (counts: Map<string, number>, key: string): void {
  counts.set(key, (counts.get(key) ?? 0) + 1)
}

function decrement (counts: Map<string, number>, key: string): void {
  const count = (counts.get(key) as number) - 1
  if (count === 0) counts.delete(key)
  else counts.set(key, count)
}
