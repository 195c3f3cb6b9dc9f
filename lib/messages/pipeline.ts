import type { FastifyBaseLogger } from 'fastify'
import {
  GatewayTimeoutError, InvalidMessageError, MessageHookFailedError, RateLimitedError, UnknownRouteError
} from '../errors'
import type { GatewayConnection, MessageHook, MessageRateLimit } from '../options/message-types'
import { RateLimiter } from '../relay/rate-limit'
import type { BackendReply, Session } from './backends/types'
import { errorFrame, replyFrame, withDetails, type MessageFailure } from './envelope'
import type { ActiveRoute, MessageRouter } from './router'
import { RequestSignal } from './signal'

/** A correlation id must be safe to echo in a header: a number, or printable ASCII. */
const CORRELATION_ID = /^[\x20-\x7e]{1,256}$/
/** The error codes that say the backend is unwell (they count against its circuit breaker). */
const BACKEND_FAILURES = new Set(['FST_WS_GATEWAY_BACKEND_ERROR', 'FST_WS_GATEWAY_BAD_GATEWAY', 'FST_WS_GATEWAY_TIMEOUT', 'FST_WS_GATEWAY_QUEUE_UNAVAILABLE'])
/** Rejection of a backend call cut short by the client leaving (the reason its signal is aborted with). */
export const kClientGone = Symbol('client gone')

/** What one connection's messages share on their way through the pipeline. */
export interface PipelineContext {
  readonly router: MessageRouter
  readonly connection: GatewayConnection
  readonly session: Session
  readonly log: FastifyBaseLogger
  /** This connection's rate limiters: the registration's under `''`, each route's under its key. */
  readonly limiters: Map<string, RateLimiter>
  /**
   * The signals of this connection's backend calls in flight, which the connection aborts with
   * `kClientGone` when its client leaves; undefined once it has.
   */
  requests: Set<RequestSignal> | undefined
}

/** Where a message has got to: what an error frame needs to say. */
interface Progress {
  id: string | number | undefined
  key: string | null
}

function correlationIdOf (ctx: PipelineContext, message: unknown): string | number | undefined {
  const id = ctx.router.messages.correlationId(message)
  if (id === undefined || id === null) return undefined
  if ((typeof id === 'number' && Number.isFinite(id)) || (typeof id === 'string' && CORRELATION_ID.test(id))) return id
  throw new InvalidMessageError('the correlation id must be a number or 1 to 256 printable ASCII characters')
}

function routeKeyOf (ctx: PipelineContext, message: unknown): string {
  const key = runHook(ctx, () => ctx.router.messages.routeKey(message, ctx.connection), 'routeKey')
  if (typeof key !== 'string' || key === '') throw new InvalidMessageError('no route key')
  return key
}

/** Runs an app function; a coded error it throws is the app's answer, anything else is logged as a bug. */
function runHook<T> (ctx: PipelineContext, fn: () => T, name: string): T {
  try {
    return fn()
  } catch (err) {
    throw asFailure(ctx, err, name)
  }
}

function asFailure (ctx: PipelineContext, err: unknown, name: string): Error {
  const { code, statusCode } = err as Partial<MessageFailure>
  if (typeof code === 'string' && typeof statusCode === 'number') return err as Error
  ctx.log.error({ err, hook: name }, 'ws gateway message hook failed')
  return new MessageHookFailedError()
}

function limit (ctx: PipelineContext, name: string, rate: MessageRateLimit | false): void {
  if (rate === false) return
  let limiter = ctx.limiters.get(name)
  if (limiter === undefined) {
    limiter = new RateLimiter({ messagesPerSecond: rate.messagesPerSecond, bytesPerSecond: Infinity, onExceeded: 'drop' })
    ctx.limiters.set(name, limiter)
  }
  if (!limiter.take(1, 0)) throw withDetails(new RateLimitedError(), { retryAfter: limiter.secondsUntilNext() })
}

/** Runs an `onMessage` hook: the registration's, or the route `routeKey`'s. */
async function applyHook (ctx: PipelineContext, hook: MessageHook, message: unknown, routeKey?: string): Promise<unknown> {
  try {
    const result = await hook(message, ctx.connection)
    return result === undefined ? message : result
  } catch (err) {
    throw asFailure(ctx, err, routeKey === undefined ? 'onMessage' : `routes["${routeKey}"].onMessage`)
  }
}

/**
 * Calls the route's backend under its circuit breaker, racing its timeout and the client's
 * departure: a timeout aborts the backend call and answers `TIMEOUT`; the client leaving (the
 * connection aborts every signal in `ctx.requests`) aborts it and rejects with `kClientGone`,
 * which is nobody's failure.
 */
async function callBackend (ctx: PipelineContext, route: ActiveRoute, key: string, message: unknown, body: string, id: string | number | undefined): Promise<BackendReply | undefined> {
  if (ctx.requests === undefined) throw kClientGone
  route.breaker?.admit()
  const signal = new RequestSignal()
  const requests = ctx.requests
  requests.add(signal)
  const timer = setTimeout(() => signal.abort(new GatewayTimeoutError()), route.timeout)
  const call = route.call({
    route: route.options.key,
    key,
    message,
    body,
    correlationId: id,
    connection: ctx.connection,
    session: ctx.session,
    signal,
    deadline: Date.now() + route.timeout,
    log: ctx.log
  })
  let reply
  try {
    reply = await call
    route.breaker?.success()
  } catch (failure) {
    // Every backend gives up at once when its signal is aborted; the abort's reason is the answer.
    const err = signal.aborted ? signal.reason : failure
    if (err === kClientGone) route.breaker?.release()
    else if (BACKEND_FAILURES.has((err as MessageFailure).code)) route.breaker?.failure()
    else route.breaker?.success()
    throw err
  } finally {
    clearTimeout(timer)
    requests.delete(signal)
  }
  return reply
}

/**
 * One message through the middleware, in the README's order: parse, correlation id, route key,
 * route (`$default`), rate limits (the registration's, then the route's), schemas (same), the
 * `onMessage` hooks (same), circuit breaker, backend with timeout. Resolves with the frame to send
 * back, or undefined when there is none (a WebSocket route, or the client left).
 */
export async function handleMessage (ctx: PipelineContext, raw: Buffer): Promise<string | undefined> {
  const { router } = ctx
  const progress: Progress = { id: undefined, key: null }
  router.stats.requests++
  const text = raw.toString()
  try {
    let message: unknown
    try {
      message = JSON.parse(text)
    } catch {
      throw new InvalidMessageError('not JSON')
    }
    progress.id = correlationIdOf(ctx, message)
    const key = progress.key = routeKeyOf(ctx, message)
    const route = router.find(key)
    if (route === undefined) throw new UnknownRouteError(key)
    limit(ctx, '', router.messages.rateLimit)
    limit(ctx, route.options.key, route.options.rateLimit)
    // A schema may coerce or strip (the app's Ajv settings), a hook may replace: then the body is
    // written from the message, else the client's text goes as it came.
    const before = message
    if (router.validate !== undefined) message = router.validate(message)
    if (route.validate !== undefined) message = route.validate(message)
    if (router.messages.onMessage !== undefined) message = await applyHook(ctx, router.messages.onMessage, message)
    if (route.options.onMessage !== undefined) message = await applyHook(ctx, route.options.onMessage, message, route.options.key)
    const changed = message !== before || router.validate !== undefined || route.validate !== undefined
    const body = changed ? JSON.stringify(message) : text
    const reply = await callBackend(ctx, route, key, message, body, progress.id)
    if (reply === undefined) return undefined
    router.stats.replies++
    return replyFrame(progress.id, key, reply.status, reply.data)
  } catch (err) {
    if (err === kClientGone) {
      router.stats.clientGone++
      return undefined
    }
    const failure = asFailure(ctx, err, 'pipeline') as unknown as MessageFailure
    router.stats.errors[failure.code] = (router.stats.errors[failure.code] ?? 0) + 1
    return errorFrame(progress.id, progress.key, failure)
  }
}
