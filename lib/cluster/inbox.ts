import type { Redis } from 'ioredis'
import { parseEntry, type Target } from './codec'
import type { Outgoing, OutgoingClose } from '../registry/types'

/** What the inbox does with each entry, in order. */
export type InboxHandler = (target: Target, action: Outgoing | OutgoingClose) => void

/** How long one blocking read waits before it reads again (and notices a stop). */
const BLOCK_MS = 1000
/** Entries taken per read. */
const BATCH = 256
/** Pause after a failed read (Redis down, link killed) before the next try. */
const RETRY_MS = 100

/**
 * A node's inbox: a Redis Stream read only by its node, from the id after the last entry it
 * handled. A read lost to a dropped link is simply made again from that id, so nothing is lost
 * (where plain pub/sub would drop what was published meanwhile). Handled entries are trimmed.
 */
export class Inbox {
  /** The id of the last entry handled (`'0-0'` reads the stream from its start); '' until started. */
  lastId = ''
  /** Entries handled, for `stats()`. */
  handled = 0
  /** When (our clock, ms) the entry `lastId` was handled. */
  handledAt = 0
  private stopped = false
  /** Settles once the reading loop has ended (after `stop()` and the reader's disconnect). */
  done: Promise<void> = Promise.resolve()

  constructor (private readonly key: string, private readonly reader: Redis, private readonly trimmer: Redis, private readonly handle: InboxHandler) {}

  get started (): boolean {
    return this.lastId !== ''
  }

  /** Starts reading the entries after `lastId`. */
  start (lastId: string): void {
    this.lastId = lastId
    this.done = this.run()
  }

  private async run (): Promise<void> {
    while (!this.stopped) {
      try {
        const result = await this.reader.xreadBuffer('COUNT', BATCH, 'BLOCK', BLOCK_MS, 'STREAMS', this.key, this.lastId)
        const entries = result?.[0]?.[1] ?? []
        for (const [id, raw] of entries) {
          this.lastId = id.toString()
          this.handled++
          this.handledAt = Date.now()
          const { target, action } = parseEntry(raw)
          this.handle(target, action)
        }
        if (entries.length > 0) this.trimmer.xtrim(this.key, 'MINID', this.lastId).catch(() => {})
      } catch {
        if (!this.stopped) await new Promise((resolve) => setTimeout(resolve, RETRY_MS))
      }
    }
  }

  /** Stops reading once the read under way returns (disconnect the reader to end it at once). */
  stop (): void {
    this.stopped = true
  }
}
