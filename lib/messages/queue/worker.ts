import { hostname } from 'node:os'
import type { Redis } from 'ioredis'
import { INBOX_MAX_LENGTH, parseRequest, replyFields, type QueueRequest } from './wire'

export type { QueueRequest } from './wire'

/** Options of `createQueueWorker`. */
export interface QueueWorkerOptions {
  /** An ioredis client; the worker reads on a duplicate of it and closes only that one. */
  redis: Redis
  /** The route's stream (its `queue.stream`). */
  stream: string
  /** The consumer group; workers of one group share the requests. Created if missing. */
  group: string
  /** This worker's name in the group. Default: host name and process id. */
  consumer?: string
  /**
   * Answers one request: its return value is the reply's `data` (status 200). Throw an error
   * with a 4xx `statusCode` to reject it (its `data`, else `{ message }`, goes to the client);
   * any other throw answers 500 (the client gets `BACKEND_ERROR`, never the error's text).
   */
  handler: (request: QueueRequest) => unknown
  /** Requests read (and handled concurrently) at a time. Default 16. */
  count?: number
  /** ms one read waits for requests before it is sent again. Default 2000. */
  block?: number
  /** Called with what a handler threw that was not a 4xx, and with read failures. Default: none. */
  onError?: (err: unknown, request?: QueueRequest) => void
}

/** A running worker. */
export interface QueueWorker {
  /** Resolves once the group exists and the worker is reading. */
  readonly ready: Promise<void>
  /** Stops reading; resolves once the requests in hand are answered. */
  close: () => Promise<void>
}

async function answer (redis: Redis, { handler, onError }: Required<Pick<QueueWorkerOptions, 'handler' | 'onError'>>, request: QueueRequest): Promise<void> {
  let status = 200
  let data: unknown
  try {
    data = await handler(request)
  } catch (err) {
    const { statusCode, data: errorData, message } = err as { statusCode?: unknown, data?: unknown, message?: unknown }
    if (typeof statusCode === 'number' && statusCode >= 400 && statusCode < 500) {
      status = statusCode
      data = errorData ?? { message }
    } else {
      onError(err, request)
      status = 500
      data = null
    }
  }
  await redis.xadd(request.replyTo, 'MAXLEN', '~', String(INBOX_MAX_LENGTH), '*', ...replyFields(request.request, status, data))
}

/**
 * Serves a queue route from any process, in any number of copies: reads the route's stream in a
 * consumer group, calls `handler` for each request, appends the reply to the request's `replyTo`
 * (the inbox of whichever gateway instance holds the client) and acknowledges it. Requests past
 * their deadline are acknowledged without being handled: nobody waits for them any more.
 *
 * @example
 * ```ts
 * import Redis from 'ioredis'
 * import { createQueueWorker } from 'fastify-ws-gateway'
 *
 * const worker = createQueueWorker({
 *   redis: new Redis(process.env.REDIS_URL!),
 *   stream: 'jobs:report',
 *   group: 'reports',
 *   handler: async ({ message, sub }) => ({ report: await buildReport(message, sub) })
 * })
 * ```
 */
export function createQueueWorker (options: QueueWorkerOptions): QueueWorker {
  const { redis, stream, group, consumer = `${hostname()}-${process.pid}`, count = 16, block = 2_000, onError = () => {} } = options
  const reader = redis.duplicate({ commandTimeout: undefined })
  reader.on('error', (err) => onError(err))
  const stop = new AbortController()

  const ready = (async () => {
    try {
      await reader.xgroup('CREATE', stream, group, '$', 'MKSTREAM')
    } catch (err) {
      if (!String((err as Error).message).startsWith('BUSYGROUP')) throw err
    }
  })()

  async function run (): Promise<void> {
    await ready
    while (!stop.signal.aborted) {
      try {
        const result = await reader.xreadgroup('GROUP', group, consumer, 'COUNT', count, 'BLOCK', block, 'STREAMS', stream, '>') as Array<[string, Array<[string, string[]]>]> | null
        await Promise.all((result ?? []).flatMap(([, entries]) => entries.map(async ([id, flat]) => {
          await handle(id, flat)
        })))
      } catch (err) {
        if (!stop.signal.aborted) {
          onError(err)
          await new Promise((resolve) => setTimeout(resolve, 100))
        }
      }
    }
  }

  async function handle (id: string, flat: string[]): Promise<void> {
    let request: QueueRequest | undefined
    try {
      request = parseRequest(flat)
    } catch (err) {
      onError(err)
    }
    if (request !== undefined && request.deadline > Date.now()) await answer(redis, { handler: options.handler, onError }, request)
    await redis.xack(stream, group, id)
  }

  const running = run()
  running.catch(() => {})
  return {
    ready,
    async close () {
      stop.abort()
      reader.disconnect()
      await running.catch(() => {})
    }
  }
}
