import { MAX_TIMER_DELAY } from '../../options/defaults'
import { CloseCode } from '../../relay/close-codes'
import type { Connection } from '../../relay/types'
import type { TokenClaims } from './token'

/** One scheduled call: its deadline (ms since the epoch) and where it sits in the heap (-1 once gone). */
export interface Deadline<T> {
  readonly at: number
  readonly item: T
  index: number
}

/**
 * Calls `onDue(item)` at each item's deadline (ms since the epoch), however far away, with one
 * timer for all of them rather than one per item: the items wait in a binary min-heap and the
 * timer is set for the earliest. A wait longer than `maxDelay` (the most a Node timer can wait)
 * is chained in steps; a timer that fires early waits again, so nothing is called before its
 * deadline. The timer does not keep the process alive.
 */
export class Deadlines<T> {
  private readonly heap: Array<Deadline<T>> = []
  private timer: NodeJS.Timeout | undefined
  /** The deadline the timer is set for. */
  private timerAt = Number.POSITIVE_INFINITY

  constructor (private readonly onDue: (item: T) => void, private readonly maxDelay = MAX_TIMER_DELAY) {}

  get size (): number {
    return this.heap.length
  }

  /** Schedules `item` for `at`; the handle cancels it (`delete`). */
  add (at: number, item: T): Deadline<T> {
    const entry = { at, item, index: this.heap.length }
    this.heap.push(entry)
    this.up(entry.index)
    if (at < this.timerAt) this.arm()
    return entry
  }

  /** Cancels a scheduled call (nothing when it was called or cancelled already). */
  delete (entry: Deadline<T>): void {
    const i = entry.index
    if (i < 0) return
    entry.index = -1
    const last = this.heap.pop() as Deadline<T>
    if (last !== entry) {
      this.heap[i] = last
      last.index = i
      this.down(i)
      this.up(i)
    }
    if (this.heap.length === 0) this.disarm()
  }

  /** Calls every item whose deadline has come, then waits for the next one. */
  private fire (): void {
    this.timer = undefined
    this.timerAt = Number.POSITIVE_INFINITY
    const now = Date.now()
    while (this.heap.length > 0 && this.heap[0].at <= now) {
      const { item } = this.heap[0]
      this.delete(this.heap[0])
      this.onDue(item)
    }
    if (this.heap.length > 0) this.arm()
  }

  private arm (): void {
    this.disarm()
    const at = this.heap[0].at
    this.timerAt = at
    this.timer = setTimeout(() => this.fire(), Math.min(this.maxDelay, Math.max(0, at - Date.now()))).unref()
  }

  private disarm (): void {
    clearTimeout(this.timer)
    this.timer = undefined
    this.timerAt = Number.POSITIVE_INFINITY
  }

  private up (i: number): void {
    const { heap } = this
    while (i > 0) {
      const parent = (i - 1) >> 1
      if (heap[parent].at <= heap[i].at) return
      this.swap(i, parent)
      i = parent
    }
  }

  private down (i: number): void {
    const { heap } = this
    for (;;) {
      const left = 2 * i + 1
      const right = left + 1
      let least = i
      if (left < heap.length && heap[left].at < heap[least].at) least = left
      if (right < heap.length && heap[right].at < heap[least].at) least = right
      if (least === i) return
      this.swap(i, least)
      i = least
    }
  }

  private swap (a: number, b: number): void {
    const { heap } = this
    const entry = heap[a]
    heap[a] = heap[b]
    heap[b] = entry
    heap[a].index = a
    heap[b].index = b
  }
}

/**
 * The token expiries of one route's connections, one timer for all (`Deadlines`): each connection
 * is closed with 1008 `token expired` at the instant the handshake starts refusing its token.
 */
export class TokenExpiries {
  private readonly deadlines = new Deadlines<Connection>((connection) => connection.end(CloseCode.POLICY, 'token expired'))

  /**
   * Closes `connection` at `exp` plus the verifier's clock tolerance (ms): one rule for the
   * handshake and the close, so a token the handshake accepted within the tolerance is not closed
   * the moment it connects. `delete` the handle when the connection ends first.
   */
  closeAtExpiry (connection: Connection, claims: TokenClaims, clockTolerance: number): Deadline<Connection> {
    return this.deadlines.add(claims.exp * 1000 + clockTolerance, connection)
  }

  /** Cancels a connection's close (it ended first). */
  delete (entry: Deadline<Connection>): void {
    this.deadlines.delete(entry)
  }
}
