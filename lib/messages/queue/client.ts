import { randomBytes } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import type { Redis } from 'ioredis'
import { QueueUnavailableError } from '../../errors'
import type { RedisLinks } from '../../cluster/redis'
import type { ResolvedQueueTarget } from '../../options/message-types'
import { asJsonText } from '../envelope'
import type { MessageStats } from '../stats'
import type { BackendRequest } from '../backends/types'
import { inboxKey, requestFields, fieldsOf } from './wire'

/** Replies read per XREAD, and how long one XREAD blocks (ms) before it is sent again. */
const READ_COUNT = 100
const READ_BLOCK = 2_000

type StreamRead = Array<[string, Array<[string, string[]]>]> | null

/**
 * Resolves once `redis` is ready (at once if it is), or when `stop` aborts (ioredis emits nothing
 * when a client waiting to reconnect is disconnected).
 */
async function readyOrStopped (redis: Redis, stop: AbortSignal): Promise<void> {
  if (redis.status === 'ready' || stop.aborted) return
  await new Promise<void>((resolve) => {
    const done = (): void => {
      redis.removeListener('ready', done)
      stop.removeEventListener('abort', done)
      resolve()
    }
    redis.once('ready', done)
    stop.addEventListener('abort', done, { once: true })
  })
}

/**
 * The gateway side of the queue: appends requests to route streams and reads the replies from
 * this instance's inbox, `<prefix>:{<nodeId>}:replies`, with XREAD BLOCK on a dedicated
 * connection from the last id it read — so a reply that lands while the link is down is read
 * when it is back. A reply whose request is no longer waited for (timed out, client gone) is
 * dropped and counted (`lateReplies`). What has been read is trimmed from the inbox.
 */
export class QueueClient {
  readonly inbox: string
  private readonly pending = new Map<string, (reply: { status: number, data: string }) => void>()
  /** The id after which the next read starts; undefined until the inbox's end is known. */
  private lastId: string | undefined
  private readonly requestPrefix = randomBytes(6).toString('base64url')
  private sequence = 0
  private readonly stop = new AbortController()
  private armed!: () => void
  private readonly running: Promise<void>

  constructor (private readonly links: RedisLinks, prefix: string, nodeId: string, private readonly stats: MessageStats, private readonly log: FastifyBaseLogger) {
    this.inbox = inboxKey(prefix, nodeId)
    const armed = new Promise<void>((resolve) => { this.armed = resolve })
    this.running = this.read()
    this.whenArmed = armed
  }

  /** Resolves once replies are being read (requests are refused until then). */
  readonly whenArmed: Promise<void>

  private async read (): Promise<void> {
    const { reader } = this.links
    while (!this.stop.signal.aborted) {
      try {
        await readyOrStopped(reader, this.stop.signal)
        if (this.stop.signal.aborted) break
        if (this.lastId === undefined) {
          // Start at the inbox's current end: what is there is for an earlier run of this node id.
          const [last] = await reader.xrevrange(this.inbox, '+', '-', 'COUNT', 1)
          this.lastId = last?.[0] ?? '0-0'
          this.armed()
        }
        const result = await reader.xread('COUNT', READ_COUNT, 'BLOCK', READ_BLOCK, 'STREAMS', this.inbox, this.lastId) as StreamRead
        for (const [, entries] of result ?? []) {
          for (const [id, flat] of entries) {
            this.lastId = id
            this.deliver(fieldsOf(flat))
          }
        }
        if (result !== null) this.links.command.xtrim(this.inbox, 'MINID', this.lastId).catch(() => {})
      } catch (err) {
        if (!this.stop.signal.aborted) this.log.debug({ err }, 'ws gateway queue inbox read failed; reading again once connected')
        // A link going down fails the read at once; wait for it to come back rather than spin.
        if (this.links.reader.status === 'ready') await new Promise((resolve) => setTimeout(resolve, 100))
      }
    }
  }

  private deliver (fields: Record<string, string | undefined>): void {
    const resolve = this.pending.get(fields.request ?? '')
    if (resolve === undefined) {
      this.stats.lateReplies++
      return
    }
    this.pending.delete(fields.request as string)
    resolve({ status: Number(fields.status), data: asJsonText(fields.data ?? '') })
  }

  /**
   * Appends a request to the route's stream and waits for its reply; `QUEUE_UNAVAILABLE` when
   * Redis is not reachable now, refuses the append or does not take it within
   * `cluster.commandTimeout`. The wait ends with the request's signal.
   */
  async send (target: ResolvedQueueTarget, request: BackendRequest): Promise<{ status: number, data: string }> {
    if (this.lastId === undefined || this.links.command.status !== 'ready') throw new QueueUnavailableError()
    const id = `${this.requestPrefix}.${++this.sequence}`
    const reply = new Promise<{ status: number, data: string }>((resolve, reject) => {
      this.pending.set(id, resolve)
      request.signal.once('abort', () => {
        this.pending.delete(id)
        reject(request.signal.reason)
      })
    })
    const fields = requestFields({
      request: id,
      replyTo: this.inbox,
      route: request.key,
      connectionId: request.connection.id,
      sub: request.connection.sub,
      correlationId: request.correlationId,
      message: request.body,
      deadline: request.deadline
    })
    try {
      await this.links.run(async (redis) => await redis.xadd(target.stream, 'MAXLEN', '~', String(target.maxLength), '*', ...fields))
    } catch (err) {
      this.pending.delete(id)
      request.log.warn({ err: (err as Error).cause }, 'ws gateway queue append failed')
      throw new QueueUnavailableError()
    }
    return await reply
  }

  async close (): Promise<void> {
    this.stop.abort()
    await this.links.close()
    await this.running
  }
}
