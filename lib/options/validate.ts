import type { RegisterOptions } from 'fastify'
import { resolveBackendEntry } from './backend'
import { resolveCluster } from './cluster'
import { resolveDns, resolveMetrics } from './discovery'
import { resolveManagementApi } from './management'
import { resolveMessages } from './messages'
import { checkChoice, checkFunction, checkInteger, checkKeys, checkName, checkTimeout, fail, isPlainObject } from './check'
import {
  DEFAULT_CLOCK_TOLERANCE, DEFAULT_CLOSE_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_DRAIN_TIMEOUT,
  DEFAULT_ENGINE, DEFAULT_HEARTBEAT_INTERVAL, DEFAULT_HIGH_WATER_MARK, DEFAULT_ID_HEADER, DEFAULT_IDLE_TIMEOUT,
  DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS_PER_IP, DEFAULT_MAX_CONNECTIONS_PER_SUBJECT, DEFAULT_MAX_PAYLOAD,
  DEFAULT_PATH, DEFAULT_RATE_LIMIT, DEFAULT_RETRY_AFTER, DEFAULT_SLOW_CONSUMER_TIMEOUT, DEFAULT_TOKEN_PROTOCOL,
  HEADER_NAME_PATTERN, MAX_TIMER_DELAY, MIN_CLOSE_TIMEOUT, MIN_CONNECT_TIMEOUT, MIN_HEARTBEAT_INTERVAL, MIN_IDLE_TIMEOUT,
  MIN_SLOW_CONSUMER_TIMEOUT
} from './defaults'
import { resolveDropHeaders, resolveIdentityHeaders } from './headers'
import { resolveJwt } from './jwt'
import type { ResolvedBackend, ResolvedOptions, WsGatewayOptions } from './types'
/** Our options, plus the ones Fastify itself reads from every plugin's options. */
const KNOWN_OPTIONS = new Set([
  'path', 'backends', 'resolveBackend', 'idHeader', 'jwt', 'authorize', 'allowedOrigins',
  'connectTimeout', 'maxPayload', 'heartbeatInterval', 'idleTimeout', 'highWaterMark',
  'closeTimeout', 'clockTolerance', 'rewriteRequestHeaders', 'engine',
  'tokenProtocol', 'idQuery', 'tokenQuery', 'tokenCookie',
  'maxConnections', 'maxConnectionsPerIp', 'maxConnectionsPerSubject', 'retryAfter', 'drainTimeout',
  'shutdownCloseCode', 'closeOnTokenExpiry', 'slowConsumerTimeout', 'slowConsumerCloseCode', 'rateLimit',
  'messages', 'cluster', 'managementApi', 'dns', 'metrics',
  'dropHeaders', 'identityHeaders',
  'prefix', 'logLevel', 'logSerializers'
])
/** Options that only mean something when frames are relayed to a backend named by the client. */
const RELAY_ONLY = ['backends', 'resolveBackend', 'idHeader', 'idQuery', 'engine', 'rewriteRequestHeaders', 'dropHeaders', 'identityHeaders']

function resolveRateLimit (input: unknown): ResolvedOptions['rateLimit'] {
  if (input === false) return false
  if (input === undefined) return DEFAULT_RATE_LIMIT
  if (!isPlainObject(input)) fail('rateLimit must be an object or false')
  checkKeys(input, new Set(Object.keys(DEFAULT_RATE_LIMIT)), 'rateLimit.')
  return Object.freeze({
    messagesPerSecond: checkInteger(input, 'messagesPerSecond', DEFAULT_RATE_LIMIT.messagesPerSecond, 1, 'rateLimit.'),
    bytesPerSecond: checkInteger(input, 'bytesPerSecond', DEFAULT_RATE_LIMIT.bytesPerSecond, 1, 'rateLimit.'),
    onExceeded: checkChoice(input, 'onExceeded', DEFAULT_RATE_LIMIT.onExceeded, ['close', 'drop'] as const)
  })
}

function resolveOrigins (allowed: unknown): ResolvedOptions['isOriginAllowed'] {
  if (allowed === undefined) return undefined
  if (typeof allowed === 'function') return allowed as ResolvedOptions['isOriginAllowed']
  if (!Array.isArray(allowed)) fail('allowedOrigins must be an array of origins or a function')
  const origins = new Set(allowed.map((origin: unknown, i) => checkOrigin(origin, `allowedOrigins[${i}]`)))
  return (origin) => origins.has(origin.toLowerCase())
}

/**
 * An origin as a browser sends it in `Origin` (RFC 6454 §6.2), lowercased: `scheme://host[:port]`,
 * without a path, a trailing slash, credentials or a default port — anything else could never
 * match, so it is refused, with the form to write when there is one.
 */
function checkOrigin (origin: unknown, name: string): string {
  const expected = `${name} must be an origin like "https://app.example" (scheme://host[:port], no path or trailing slash)`
  if (typeof origin !== 'string') fail(expected)
  let url
  try {
    url = new URL(origin)
  } catch {
    fail(expected)
  }
  const serialized = `${url.protocol}//${url.host}`
  if (url.host === '' || url.username !== '' || url.password !== '') fail(expected)
  if (serialized !== origin.toLowerCase()) fail(`${expected}: write "${serialized}"`)
  return serialized
}

/** Fastify's own register options, which a plugin wrapped in fastify-plugin must apply itself. */
function resolveRegisterOptions (opts: Record<string, unknown>, logLevels: readonly string[] | undefined): Pick<ResolvedOptions, 'prefix' | 'logLevel' | 'logSerializers'> {
  const { prefix, logLevel, logSerializers } = opts
  if (prefix !== undefined && typeof prefix !== 'string') fail('prefix must be a string')
  if (logLevel !== undefined && (typeof logLevel !== 'string' || logLevels?.includes(logLevel) === false)) {
    fail(`logLevel must be ${logLevels === undefined ? 'a level name' : `one of ${logLevels.join(', ')}`}`)
  }
  if (logSerializers !== undefined && (!isPlainObject(logSerializers) || !Object.values(logSerializers).every((f) => typeof f === 'function'))) {
    fail('logSerializers must be an object of functions')
  }
  return {
    prefix: prefix as string | undefined,
    logLevel: logLevel as RegisterOptions['logLevel'],
    logSerializers: logSerializers === undefined ? undefined : Object.freeze({ ...logSerializers as RegisterOptions['logSerializers'] })
  }
}

/**
 * Checks every option and returns a new frozen object with the defaults filled in. The caller's
 * object is never modified. Throws `FST_WS_GATEWAY_INVALID_OPTION` naming the option at fault.
 * `logLevels` are the level names the app's logger knows, when it tells (pino does).
 */
export function validateOptions (input: WsGatewayOptions = {}, logLevels?: readonly string[]): ResolvedOptions {
  if (!isPlainObject(input)) fail('options must be an object')
  const opts = input as Record<string, unknown>
  checkKeys(opts, KNOWN_OPTIONS, '')

  const path = opts.path ?? DEFAULT_PATH
  if (typeof path !== 'string' || !path.startsWith('/')) fail('path must be a string starting with "/"')

  const idHeader = opts.idHeader ?? DEFAULT_ID_HEADER
  if (typeof idHeader !== 'string' || !HEADER_NAME_PATTERN.test(idHeader)) fail('idHeader must be a valid HTTP header name')

  const maxPayload = checkInteger(opts, 'maxPayload', DEFAULT_MAX_PAYLOAD, 1)

  const backendsInput = opts.backends ?? {}
  if (!isPlainObject(backendsInput)) fail('backends must be an object mapping IDs to backends')
  const backends = new Map<string, ResolvedBackend>()
  for (const [id, option] of Object.entries(backendsInput)) {
    backends.set(id, resolveBackendEntry(id, option, `backends["${id}"]`, maxPayload))
  }
  checkFunction(opts.resolveBackend, 'resolveBackend')
  const messages = opts.messages === undefined ? undefined : resolveMessages(opts.messages)
  if (messages !== undefined) {
    const relayOnly = RELAY_ONLY.find((name) => opts[name] !== undefined)
    if (relayOnly !== undefined) fail(`${relayOnly} is for relay mode; message mode (messages) routes by the message`)
  } else if (backends.size === 0 && opts.resolveBackend === undefined && opts.cluster === undefined) {
    fail('give backends, resolveBackend or both (or messages, for message mode; or cluster, for backends that announce themselves)')
  }

  const clockTolerance = checkInteger(opts, 'clockTolerance', DEFAULT_CLOCK_TOLERANCE, 0)
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
  const identity = resolveIdentityHeaders(opts.identityHeaders)
  if (typeof closeOnTokenExpiry !== 'boolean') fail('closeOnTokenExpiry must be a boolean')
  // 0 closes every connection at once on shutdown: a choice, not a mistake.
  const drainTimeout = checkTimeout(opts, 'drainTimeout', DEFAULT_DRAIN_TIMEOUT, 0)
  const closeTimeout = checkTimeout(opts, 'closeTimeout', DEFAULT_CLOSE_TIMEOUT, MIN_CLOSE_TIMEOUT)
  // Both run in one timer on shutdown.
  if (drainTimeout + closeTimeout > MAX_TIMER_DELAY) fail(`drainTimeout + closeTimeout must be at most ${MAX_TIMER_DELAY} (ms)`)

  return Object.freeze({
    path,
    backends,
    resolveBackend: opts.resolveBackend as WsGatewayOptions['resolveBackend'],
    idHeader: idHeader.toLowerCase(),
    ...resolveJwt(opts.jwt, clockTolerance),
    authorize: opts.authorize as WsGatewayOptions['authorize'],
    isOriginAllowed: resolveOrigins(opts.allowedOrigins),
    connectTimeout: checkTimeout(opts, 'connectTimeout', DEFAULT_CONNECT_TIMEOUT, MIN_CONNECT_TIMEOUT),
    maxPayload,
    heartbeatInterval: checkTimeout(opts, 'heartbeatInterval', DEFAULT_HEARTBEAT_INTERVAL, MIN_HEARTBEAT_INTERVAL, true),
    idleTimeout: checkTimeout(opts, 'idleTimeout', DEFAULT_IDLE_TIMEOUT, MIN_IDLE_TIMEOUT, true),
    highWaterMark: checkInteger(opts, 'highWaterMark', DEFAULT_HIGH_WATER_MARK, 1),
    closeTimeout,
    clockTolerance,
    rewriteRequestHeaders: opts.rewriteRequestHeaders as WsGatewayOptions['rewriteRequestHeaders'],
    isDroppedHeader: resolveDropHeaders(opts.dropHeaders, identity.names),
    identityHeaders: identity.headers,
    engine,
    tokenProtocol,
    idQuery: checkName(opts.idQuery, 'idQuery'),
    tokenQuery: checkName(opts.tokenQuery, 'tokenQuery'),
    tokenCookie,
    maxConnections: checkInteger(opts, 'maxConnections', DEFAULT_MAX_CONNECTIONS, 0),
    maxConnectionsPerIp: checkInteger(opts, 'maxConnectionsPerIp', DEFAULT_MAX_CONNECTIONS_PER_IP, 0),
    maxConnectionsPerSubject: checkInteger(opts, 'maxConnectionsPerSubject', DEFAULT_MAX_CONNECTIONS_PER_SUBJECT, 0),
    retryAfter: checkInteger(opts, 'retryAfter', DEFAULT_RETRY_AFTER, 0),
    drainTimeout,
    shutdownCloseCode: checkChoice(opts, 'shutdownCloseCode', 1001, [1001, 1012] as const),
    closeOnTokenExpiry,
    slowConsumerTimeout: checkTimeout(opts, 'slowConsumerTimeout', DEFAULT_SLOW_CONSUMER_TIMEOUT, MIN_SLOW_CONSUMER_TIMEOUT, true),
    slowConsumerCloseCode: checkChoice(opts, 'slowConsumerCloseCode', 1008, [1008, 1013] as const),
    rateLimit: resolveRateLimit(opts.rateLimit),
    cluster: resolveCluster(opts.cluster),
    managementApi: resolveManagementApi(opts.managementApi),
    messages,
    dns: resolveDns(opts.dns),
    metrics: resolveMetrics(opts.metrics),
    ...resolveRegisterOptions(opts, logLevels)
  })
}
