import type { FastifyRequest } from 'fastify'
import type { FastifyJWTOptions } from '@fastify/jwt'
import type { ConnectionOptions } from 'node:tls'
import type { PerMessageDeflateOptions } from 'ws'
import { InvalidOptionError } from './errors'

/** TLS settings passed to the backend connection (for `wss:` backends). */
export type BackendTlsOptions = Pick<ConnectionOptions, 'ca' | 'cert' | 'key' | 'pfx' | 'passphrase' | 'rejectUnauthorized' | 'servername' | 'checkServerIdentity'>

/** One backend: where it is and how to connect to it. */
export interface BackendConfig extends BackendTlsOptions {
  /** `ws:` or `wss:` URL; the client's query string is appended to it. */
  url: string
  /** Extra headers sent on the handshake to this backend (after the client's, before `rewriteRequestHeaders`). */
  headers?: Record<string, string>
  /** Offer permessage-deflate to this backend (default off). */
  perMessageDeflate?: boolean | PerMessageDeflateOptions
  /** Largest message accepted from this backend, in bytes (default: the gateway's `maxPayload`). */
  maxPayload?: number
}

/** A backend as written in the options: a URL string or a full config. */
export type BackendOption = string | BackendConfig

/** A validated backend, ready to connect to. */
export interface ResolvedBackend {
  readonly id: string
  readonly url: URL
  readonly headers: Readonly<Record<string, string>>
  readonly perMessageDeflate: boolean | PerMessageDeflateOptions
  readonly maxPayload: number
  readonly tls: BackendTlsOptions
}

/** Headers sent to the backend on the handshake. */
export type UpstreamHeaders = Record<string, string | string[]>

/** Options of `fastify.register(wsGateway, options)`. The README has the table with defaults. */
export interface WsGatewayOptions {
  /** Route of the WebSocket endpoint. Default `/ws`. */
  path?: string
  /** Static map of backend ID → URL or config. */
  backends?: Record<string, BackendOption>
  /** Resolver for IDs not in `backends` (service discovery); `undefined` means unknown (404). */
  resolveBackend?: (id: string, request: FastifyRequest) => BackendOption | undefined | Promise<BackendOption | undefined>
  /** Header carrying the backend ID. Default `id`. */
  idHeader?: string
  /** Options for @fastify/jwt. Omit to reuse the app's own @fastify/jwt registration. */
  jwt?: FastifyJWTOptions
  /** Per-backend access check from `request.user`; false → 403. */
  authorize?: (request: FastifyRequest, backendId: string) => boolean | Promise<boolean>
  /** Browser origins allowed to connect: exact origins or a predicate. Default: any. */
  allowedOrigins?: readonly string[] | ((origin: string, request: FastifyRequest) => boolean)
  /** Milliseconds to wait for the backend to accept. Default 10000. */
  connectTimeout?: number
  /** Largest message accepted on either leg, in bytes (inclusive). Default 1 MiB. */
  maxPayload?: number
  /** Milliseconds between pings on both legs; a leg that missed a pong is terminated. 0 = off. Default 30000. */
  heartbeatInterval?: number
  /** Milliseconds without a data frame either way after which both legs are closed. 0 = off (default). */
  idleTimeout?: number
  /**
   * Buffered bytes on a leg above which the other leg stops being read. Default 1 MiB. The
   * passthrough engine stops already at the socket's own 16 KiB write buffer when that is lower.
   */
  highWaterMark?: number
  /** Milliseconds `fastify.close()` waits for close handshakes before terminating what is left. Default 5000. */
  closeTimeout?: number
  /** Seconds of clock skew tolerated on `exp`/`nbf` (only when the gateway registers @fastify/jwt). Default 5. */
  clockTolerance?: number
  /** Change the headers sent to the backend. */
  rewriteRequestHeaders?: (request: FastifyRequest, headers: UpstreamHeaders) => UpstreamHeaders
  /**
   * Marker of a token carried in the subprotocol list, for browsers: the client offers
   * `[marker, token, ...appProtocols]`. `false` turns it off. Default `'bearer'`.
   */
  tokenProtocol?: string | false
  /** Query parameter that may carry the backend ID when the ID header is absent. Default: none. */
  idQuery?: string
  /** Query parameter that may carry the token (redacted from logs, never forwarded). Default: none. */
  tokenQuery?: string
  /** Cookie that may carry the token (needs `allowedOrigins`). Default: none. */
  tokenCookie?: string
  /**
   * How frames are relayed: `'passthrough'` forwards them over the raw sockets without decoding
   * payloads (used when neither leg negotiated an extension), `'ws'` as whole messages through
   * ws. Default `'passthrough'`.
   */
  engine?: RelayEngine
  /** Connections (open or connecting) this gateway takes at most; then 503. 0 = no limit. Default 10000. */
  maxConnections?: number
  /** Connections one client IP may hold; then 429. Default 0 = no limit (behind a proxy or NAT many clients share one IP). */
  maxConnectionsPerIp?: number
  /** Connections one token subject (`sub`) may hold; then 429. Default 0 = no limit (service accounts share a subject). */
  maxConnectionsPerSubject?: number
  /** Seconds sent in `Retry-After` with 429 and 503 answers. Default 5. */
  retryAfter?: number
  /** Milliseconds over which `fastify.close()` spreads its close frames, so clients don't all reconnect at once. Default 1000. */
  drainTimeout?: number
  /** Close code sent to clients on `fastify.close()`: 1001 going away or 1012 service restart. Default 1001. */
  shutdownCloseCode?: 1001 | 1012
  /** Close with 1008 `token expired` when the client's token expires. Default true. */
  closeOnTokenExpiry?: boolean
  /** Milliseconds a client may keep the backend leg stopped (see `highWaterMark`) before it is closed. 0 = never. Default 30000. */
  slowConsumerTimeout?: number
  /** Close code for a slow consumer: 1008 policy or 1013 try again later. Default 1008. */
  slowConsumerCloseCode?: 1008 | 1013
  /** Per-connection limit on what a client sends, or `false` for none. Default 10000 messages/s and 64 MiB/s, close. */
  rateLimit?: RateLimitOptions | false
}

/** A token bucket per connection on the client's messages; a second's worth may come in a burst. */
export interface RateLimitOptions {
  /** Messages per second. Default 10000. */
  messagesPerSecond?: number
  /** Payload bytes per second. Default 64 MiB. */
  bytesPerSecond?: number
  /** Over the limit: `'close'` the client with 1008 `rate limit`, or `'drop'` the message (and count it). Default `'close'`. */
  onExceeded?: 'close' | 'drop'
}

/** The options after validation, with every default filled in. */
export interface ResolvedOptions {
  readonly path: string
  readonly backends: ReadonlyMap<string, ResolvedBackend>
  readonly resolveBackend?: WsGatewayOptions['resolveBackend']
  readonly idHeader: string
  readonly jwt?: FastifyJWTOptions
  readonly authorize?: WsGatewayOptions['authorize']
  readonly isOriginAllowed?: (origin: string, request: FastifyRequest) => boolean
  readonly connectTimeout: number
  readonly maxPayload: number
  readonly heartbeatInterval: number
  readonly idleTimeout: number
  readonly highWaterMark: number
  readonly closeTimeout: number
  readonly clockTolerance: number
  readonly rewriteRequestHeaders?: WsGatewayOptions['rewriteRequestHeaders']
  readonly engine: RelayEngine
  readonly tokenProtocol: string | false
  readonly idQuery?: string
  readonly tokenQuery?: string
  readonly tokenCookie?: string
  readonly maxConnections: number
  readonly maxConnectionsPerIp: number
  readonly maxConnectionsPerSubject: number
  readonly retryAfter: number
  readonly drainTimeout: number
  readonly shutdownCloseCode: 1001 | 1012
  readonly closeOnTokenExpiry: boolean
  readonly slowConsumerTimeout: number
  readonly slowConsumerCloseCode: 1008 | 1013
  readonly rateLimit: Readonly<Required<RateLimitOptions>> | false
}

export const DEFAULT_PATH = '/ws'
export const DEFAULT_ID_HEADER = 'id'
export const DEFAULT_CONNECT_TIMEOUT = 10_000
export const DEFAULT_MAX_PAYLOAD = 1024 * 1024
export const DEFAULT_HEARTBEAT_INTERVAL = 30_000
export const DEFAULT_IDLE_TIMEOUT = 0
export const DEFAULT_HIGH_WATER_MARK = 1024 * 1024
export const DEFAULT_CLOSE_TIMEOUT = 5_000
export const DEFAULT_CLOCK_TOLERANCE = 5
export const DEFAULT_ENGINE: RelayEngine = 'passthrough'
export const DEFAULT_TOKEN_PROTOCOL = 'bearer'
export const DEFAULT_MAX_CONNECTIONS = 10_000
export const DEFAULT_MAX_CONNECTIONS_PER_IP = 0
export const DEFAULT_MAX_CONNECTIONS_PER_SUBJECT = 0
export const DEFAULT_RETRY_AFTER = 5
export const DEFAULT_DRAIN_TIMEOUT = 1_000
export const DEFAULT_SLOW_CONSUMER_TIMEOUT = 30_000
export const DEFAULT_RATE_LIMIT: Readonly<Required<RateLimitOptions>> = Object.freeze({
  messagesPerSecond: 10_000,
  bytesPerSecond: 64 * 1024 * 1024,
  onExceeded: 'close'
})

/** The relay engines: frames over the raw sockets, or messages through ws. */
export type RelayEngine = 'passthrough' | 'ws'

/** Backend IDs are only ever looked up, never pasted into a URL; this keeps them boring. */
export const BACKEND_ID_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/
const HEADER_NAME_PATTERN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/

/** Our options, plus the ones Fastify itself reads from every plugin's options. */
const KNOWN_OPTIONS = new Set([
  'path', 'backends', 'resolveBackend', 'idHeader', 'jwt', 'authorize', 'allowedOrigins',
  'connectTimeout', 'maxPayload', 'heartbeatInterval', 'idleTimeout', 'highWaterMark',
  'closeTimeout', 'clockTolerance', 'rewriteRequestHeaders', 'engine',
  'tokenProtocol', 'idQuery', 'tokenQuery', 'tokenCookie',
  'maxConnections', 'maxConnectionsPerIp', 'maxConnectionsPerSubject', 'retryAfter', 'drainTimeout',
  'shutdownCloseCode', 'closeOnTokenExpiry', 'slowConsumerTimeout', 'slowConsumerCloseCode', 'rateLimit',
  'prefix', 'logLevel', 'logSerializers'
])

function fail (message: string): never {
  throw new InvalidOptionError(message)
}

function isPlainObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

function checkFunction (value: unknown, name: string): void {
  if (value !== undefined && typeof value !== 'function') fail(`${name} must be a function`)
}

/** An optional name (query parameter, cookie, protocol marker): a non-empty token. */
function checkName (value: unknown, name: string): string | undefined {
  if (value !== undefined && (typeof value !== 'string' || !HEADER_NAME_PATTERN.test(value))) {
    fail(`${name} must be a non-empty name of letters, digits and !#$%&'*+.^_\`|~-`)
  }
  return value
}

function checkInteger (opts: Record<string, unknown>, name: string, fallback: number, min: number, prefix = ''): number {
  const value = opts[name] ?? fallback
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    fail(`${prefix}${name} must be an integer >= ${min}`)
  }
  return value
}

/**
 * Validates one backend entry (from the `backends` map or returned by `resolveBackend`).
 * `where` names it in messages, e.g. `backends["Backend_ABC"]`.
 */
export function resolveBackendConfig (id: string, option: unknown, where: string, gatewayMaxPayload: number): ResolvedBackend {
  const config = typeof option === 'string' ? { url: option } : option
  if (!isPlainObject(config)) fail(`${where} must be a URL string or an object with a url`)
  let url: URL
  try {
    url = new URL(String(config.url))
  } catch {
    fail(`${where}.url must be a ws: or wss: URL`)
  }
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') fail(`${where}.url must be a ws: or wss: URL`)
  if (url.hash !== '') fail(`${where}.url must not have a #fragment`)
  const headers = config.headers ?? {}
  if (!isPlainObject(headers) || !Object.values(headers).every((v) => typeof v === 'string')) {
    fail(`${where}.headers must be an object of string values`)
  }
  const { url: _url, headers: _headers, perMessageDeflate = false, maxPayload = gatewayMaxPayload, ...tls } = config
  if (typeof perMessageDeflate !== 'boolean' && !isPlainObject(perMessageDeflate)) {
    fail(`${where}.perMessageDeflate must be a boolean or an object`)
  }
  if (typeof maxPayload !== 'number' || !Number.isInteger(maxPayload) || maxPayload < 1) {
    fail(`${where}.maxPayload must be an integer >= 1`)
  }
  return Object.freeze({
    id,
    url,
    headers: Object.freeze({ ...headers as Record<string, string> }),
    perMessageDeflate: perMessageDeflate as boolean | PerMessageDeflateOptions,
    maxPayload,
    tls: Object.freeze(tls as BackendTlsOptions)
  })
}

function checkChoice<T> (opts: Record<string, unknown>, name: string, fallback: T, choices: readonly T[]): T {
  const value = (opts[name] ?? fallback) as T
  if (!choices.includes(value)) fail(`${name} must be one of ${choices.join(', ')}`)
  return value
}

function resolveRateLimit (input: unknown): ResolvedOptions['rateLimit'] {
  if (input === false) return false
  if (input === undefined) return DEFAULT_RATE_LIMIT
  if (!isPlainObject(input)) fail('rateLimit must be an object or false')
  const unknown = Object.keys(input).find((key) => !(key in DEFAULT_RATE_LIMIT))
  if (unknown !== undefined) fail(`unknown option "rateLimit.${unknown}"`)
  return Object.freeze({
    messagesPerSecond: checkInteger(input, 'messagesPerSecond', DEFAULT_RATE_LIMIT.messagesPerSecond, 1, 'rateLimit.'),
    bytesPerSecond: checkInteger(input, 'bytesPerSecond', DEFAULT_RATE_LIMIT.bytesPerSecond, 1, 'rateLimit.'),
    onExceeded: checkChoice(input, 'onExceeded', DEFAULT_RATE_LIMIT.onExceeded, ['close', 'drop'] as const)
  })
}

function resolveOrigins (allowed: unknown): ResolvedOptions['isOriginAllowed'] {
  if (allowed === undefined) return undefined
  if (typeof allowed === 'function') return allowed as ResolvedOptions['isOriginAllowed']
  if (!Array.isArray(allowed) || !allowed.every((o) => typeof o === 'string')) {
    fail('allowedOrigins must be an array of origins or a function')
  }
  const origins = new Set(allowed.map((o: string) => o.toLowerCase()))
  return (origin) => origins.has(origin.toLowerCase())
}

/**
 * Checks every option and returns a new frozen object with the defaults filled in. The caller's
 * object is never modified. Throws `FST_WS_GATEWAY_INVALID_OPTION` naming the option at fault.
 */
export function validateOptions (input: WsGatewayOptions = {}): ResolvedOptions {
  if (!isPlainObject(input)) fail('options must be an object')
  const opts = input as Record<string, unknown>
  for (const name of Object.keys(opts)) {
    if (!KNOWN_OPTIONS.has(name)) fail(`unknown option "${name}"`)
  }

  const path = opts.path ?? DEFAULT_PATH
  if (typeof path !== 'string' || !path.startsWith('/')) fail('path must be a string starting with "/"')

  const idHeader = opts.idHeader ?? DEFAULT_ID_HEADER
  if (typeof idHeader !== 'string' || !HEADER_NAME_PATTERN.test(idHeader)) fail('idHeader must be a valid HTTP header name')

  const maxPayload = checkInteger(opts, 'maxPayload', DEFAULT_MAX_PAYLOAD, 1)

  const backendsInput = opts.backends ?? {}
  if (!isPlainObject(backendsInput)) fail('backends must be an object mapping IDs to backends')
  const backends = new Map<string, ResolvedBackend>()
  for (const [id, option] of Object.entries(backendsInput)) {
    if (!BACKEND_ID_PATTERN.test(id)) fail(`backends["${id}"]: IDs must match ${BACKEND_ID_PATTERN}`)
    backends.set(id, resolveBackendConfig(id, option, `backends["${id}"]`, maxPayload))
  }
  checkFunction(opts.resolveBackend, 'resolveBackend')
  if (backends.size === 0 && opts.resolveBackend === undefined) fail('give backends, resolveBackend or both')

  if (opts.jwt !== undefined && !isPlainObject(opts.jwt)) fail('jwt must be an object of @fastify/jwt options')
  checkFunction(opts.authorize, 'authorize')
  checkFunction(opts.rewriteRequestHeaders, 'rewriteRequestHeaders')
  const engine = opts.engine ?? DEFAULT_ENGINE
  if (engine !== 'passthrough' && engine !== 'ws') fail('engine must be "passthrough" or "ws"')
  const tokenProtocol = opts.tokenProtocol === false ? false : checkName(opts.tokenProtocol ?? DEFAULT_TOKEN_PROTOCOL, 'tokenProtocol') as string
  const tokenCookie = checkName(opts.tokenCookie, 'tokenCookie')
  // A cookie rides along on any page's request: without an origin check any site could open a
  // connection in the user's name (Cross-Site WebSocket Hijacking).
  if (tokenCookie !== undefined && opts.allowedOrigins === undefined) fail('tokenCookie needs allowedOrigins')
  const closeOnTokenExpiry = opts.closeOnTokenExpiry ?? true
  if (typeof closeOnTokenExpiry !== 'boolean') fail('closeOnTokenExpiry must be a boolean')

  return Object.freeze({
    path,
    backends,
    resolveBackend: opts.resolveBackend as WsGatewayOptions['resolveBackend'],
    idHeader: idHeader.toLowerCase(),
    jwt: opts.jwt as FastifyJWTOptions | undefined,
    authorize: opts.authorize as WsGatewayOptions['authorize'],
    isOriginAllowed: resolveOrigins(opts.allowedOrigins),
    connectTimeout: checkInteger(opts, 'connectTimeout', DEFAULT_CONNECT_TIMEOUT, 1),
    maxPayload,
    heartbeatInterval: checkInteger(opts, 'heartbeatInterval', DEFAULT_HEARTBEAT_INTERVAL, 0),
    idleTimeout: checkInteger(opts, 'idleTimeout', DEFAULT_IDLE_TIMEOUT, 0),
    highWaterMark: checkInteger(opts, 'highWaterMark', DEFAULT_HIGH_WATER_MARK, 1),
    closeTimeout: checkInteger(opts, 'closeTimeout', DEFAULT_CLOSE_TIMEOUT, 0),
    clockTolerance: checkInteger(opts, 'clockTolerance', DEFAULT_CLOCK_TOLERANCE, 0),
    rewriteRequestHeaders: opts.rewriteRequestHeaders as WsGatewayOptions['rewriteRequestHeaders'],
    engine,
    tokenProtocol,
    idQuery: checkName(opts.idQuery, 'idQuery'),
    tokenQuery: checkName(opts.tokenQuery, 'tokenQuery'),
    tokenCookie,
    maxConnections: checkInteger(opts, 'maxConnections', DEFAULT_MAX_CONNECTIONS, 0),
    maxConnectionsPerIp: checkInteger(opts, 'maxConnectionsPerIp', DEFAULT_MAX_CONNECTIONS_PER_IP, 0),
    maxConnectionsPerSubject: checkInteger(opts, 'maxConnectionsPerSubject', DEFAULT_MAX_CONNECTIONS_PER_SUBJECT, 0),
    retryAfter: checkInteger(opts, 'retryAfter', DEFAULT_RETRY_AFTER, 0),
    drainTimeout: checkInteger(opts, 'drainTimeout', DEFAULT_DRAIN_TIMEOUT, 0),
    shutdownCloseCode: checkChoice(opts, 'shutdownCloseCode', 1001, [1001, 1012] as const),
    closeOnTokenExpiry,
    slowConsumerTimeout: checkInteger(opts, 'slowConsumerTimeout', DEFAULT_SLOW_CONSUMER_TIMEOUT, 0),
    slowConsumerCloseCode: checkChoice(opts, 'slowConsumerCloseCode', 1008, [1008, 1013] as const),
    rateLimit: resolveRateLimit(opts.rateLimit)
  })
}
