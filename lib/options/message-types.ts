import type { FastifyRequest } from 'fastify'
import type { BackendTlsOptions } from './tls'

/*
 * The options of message mode (`messages`) and of the shared Redis (`cluster`), as written and
 * as validated. The README's "Message mode" section has the table with defaults.
 */

/** A client connection in message mode, as routing functions, hooks and header functions see it. */
export interface GatewayConnection {
  /** Opaque, unique id (sent to backends as `x-connection-id`). */
  readonly id: string
  /** The verified token's claims. */
  readonly user: Readonly<Record<string, unknown>>
  /** The token's `sub`, when it is a string. */
  readonly sub: string | undefined
  /** The raw token, for a route whose backend wants it forwarded (see `headers`). */
  readonly token: string
  /** The upgrade request (headers, ip…). */
  readonly request: FastifyRequest
}

/** Picks a message's route key; `undefined` means it has none. */
export type RouteKeyFunction = (message: unknown, connection: GatewayConnection) => string | undefined

/**
 * Runs on every message after its schema, before the backend: return a new message to replace
 * it, nothing to keep it, or throw a coded error (`@fastify/error`) to answer with that error.
 */
export type MessageHook = (message: unknown, connection: GatewayConnection) => unknown

/** Per-connection token bucket on messages; a second's worth may come in a burst. */
export interface MessageRateLimit {
  messagesPerSecond: number
}

/** Opens after `failures` backend failures in a row; lets one trial through after `resetAfter` ms. */
export interface CircuitBreakerOptions {
  /** Default 5. */
  failures?: number
  /** ms. Default 10000. */
  resetAfter?: number
}

/** Headers for a backend: fixed, or made per connection (e.g. to forward the token). */
export type BackendHeaders = Record<string, string> | ((connection: GatewayConnection) => Record<string, string>)

/** An HTTP backend: every message is POSTed (or `method`) as JSON. */
export interface HttpTarget {
  /** `http:` or `https:` URL. */
  url: string
  /** Default `'POST'`. */
  method?: 'POST' | 'PUT' | 'PATCH' | 'DELETE'
  headers?: BackendHeaders
  /** ms; overrides the route's and the registration's `timeout`. */
  timeout?: number
  /** TLS settings for an `https:` backend. */
  tls?: BackendTlsOptions
}

/** A WebSocket backend: one upstream per client connection, opened on first use. */
export interface WsTarget extends BackendTlsOptions {
  /** `ws:` or `wss:` URL. */
  url: string
  headers?: BackendHeaders
}

/** A queue backend on Redis Streams (needs `cluster.redis`). */
export interface QueueTarget {
  /** The stream requests are appended to. */
  stream: string
  /** ms to wait for a worker's reply. Default: the route's or the registration's `timeout`. */
  replyTimeout?: number
  /** Approximate cap on the request stream's length (`XADD MAXLEN ~`). Default 10000. */
  maxLength?: number
}

/** The middleware a route may set; unset ones fall back to the registration's. */
export interface MessageMiddleware {
  /** JSON Schema of the message, compiled with the app's validator compiler. */
  schema?: unknown
  rateLimit?: MessageRateLimit | false
  circuitBreaker?: CircuitBreakerOptions | false
  onMessage?: MessageHook
  /** ms per request. */
  timeout?: number
}

/** One route: exactly one of `http`, `ws`, `queue`, plus its middleware. */
export interface MessageRoute extends MessageMiddleware {
  http?: string | HttpTarget
  ws?: string | WsTarget
  queue?: QueueTarget
}

/** The `messages` option. */
export interface MessagesOptions extends Omit<MessageMiddleware, 'circuitBreaker'> {
  /** Dotted path to the route key in the JSON message, or a function. Default `'action'`. */
  routeKey?: string | RouteKeyFunction
  /** Dotted path to the correlation id echoed in replies. Default `'id'`. */
  correlationId?: string
  /** Requests in flight per connection; at the cap the socket stops being read. Default 16. */
  maxInFlight?: number
  /** Routes by key; `$default` takes keys no other route has. */
  routes?: Record<string, MessageRoute>
  /** Default circuit breaker for routes without their own. Default `false`. */
  circuitBreaker?: CircuitBreakerOptions | false
  /** POSTed before the 101; 2xx lets the client in, 4xx is passed on, else 502. */
  connect?: { http: string | HttpTarget }
  /** POSTed after the client left; best-effort (logged, never retried). */
  disconnect?: { http: string | HttpTarget }
}

/** A validated HTTP target. */
export interface ResolvedHttpTarget {
  readonly kind: 'http'
  readonly url: URL
  /** The URL's path and query, as the request line has them. */
  readonly path: string
  readonly method: NonNullable<HttpTarget['method']>
  readonly headers: BackendHeaders
  readonly timeout: number | undefined
  readonly tls: BackendTlsOptions
}

/** A validated WebSocket target. */
export interface ResolvedWsTarget {
  readonly kind: 'ws'
  readonly url: URL
  readonly headers: BackendHeaders
  readonly tls: BackendTlsOptions
}

/** A validated queue target. */
export interface ResolvedQueueTarget {
  readonly kind: 'queue'
  readonly stream: string
  readonly replyTimeout: number | undefined
  readonly maxLength: number
}

export type ResolvedTarget = ResolvedHttpTarget | ResolvedWsTarget | ResolvedQueueTarget

/** A validated route, its middleware merged with the registration's. */
export interface ResolvedRoute {
  readonly key: string
  readonly target: ResolvedTarget
  /** The route's own schema (the registration's is checked first, separately). */
  readonly schema: unknown
  readonly rateLimit: MessageRateLimit | false
  readonly circuitBreaker: Required<CircuitBreakerOptions> | false
  readonly onMessage: MessageHook | undefined
  readonly timeout: number
}

/** The validated `messages` option. */
export interface ResolvedMessages {
  readonly routeKey: RouteKeyFunction
  readonly correlationId: (message: unknown) => unknown
  readonly maxInFlight: number
  readonly timeout: number
  readonly schema: unknown
  readonly rateLimit: MessageRateLimit | false
  readonly circuitBreaker: Required<CircuitBreakerOptions> | false
  readonly onMessage: MessageHook | undefined
  readonly routes: ReadonlyMap<string, ResolvedRoute>
  readonly connect: ResolvedHttpTarget | undefined
  readonly disconnect: ResolvedHttpTarget | undefined
}
