import { resolveBackendConfig } from './backend'
import { resolveCluster } from './cluster'
import { resolveManagementApi } from './management'
import { checkChoice, checkFunction, checkInteger, checkName, fail, isPlainObject } from './check'
import {
  BACKEND_ID_PATTERN, DEFAULT_CLOCK_TOLERANCE, DEFAULT_CLOSE_TIMEOUT, DEFAULT_CONNECT_TIMEOUT, DEFAULT_DRAIN_TIMEOUT,
  DEFAULT_ENGINE, DEFAULT_HEARTBEAT_INTERVAL, DEFAULT_HIGH_WATER_MARK, DEFAULT_ID_HEADER, DEFAULT_IDLE_TIMEOUT,
  DEFAULT_MAX_CONNECTIONS, DEFAULT_MAX_CONNECTIONS_PER_IP, DEFAULT_MAX_CONNECTIONS_PER_SUBJECT, DEFAULT_MAX_PAYLOAD,
  DEFAULT_PATH, DEFAULT_RATE_LIMIT, DEFAULT_RETRY_AFTER, DEFAULT_SLOW_CONSUMER_TIMEOUT, DEFAULT_TOKEN_PROTOCOL,
  HEADER_NAME_PATTERN
} from './defaults'
import { resolveDropHeaders, resolveIdentityHeaders } from './headers'
import type { ResolvedBackend, ResolvedOptions, WsGatewayOptions } from './types'
/** Our options, plus the ones Fastify itself reads from every plugin's options. */
const KNOWN_OPTIONS = new Set([
  'path', 'backends', 'resolveBackend', 'idHeader', 'jwt', 'authorize', 'allowedOrigins',
  'connectTimeout', 'maxPayload', 'heartbeatInterval', 'idleTimeout', 'highWaterMark',
  'closeTimeout', 'clockTolerance', 'rewriteRequestHeaders', 'engine',
  'tokenProtocol', 'idQuery', 'tokenQuery', 'tokenCookie',
  'maxConnections', 'maxConnectionsPerIp', 'maxConnectionsPerSubject', 'retryAfter', 'drainTimeout',
  'shutdownCloseCode', 'closeOnTokenExpiry', 'slowConsumerTimeout', 'slowConsumerCloseCode', 'rateLimit',
  'cluster', 'managementApi',
  'dropHeaders', 'identityHeaders',
  'prefix', 'logLevel', 'logSerializers'
])

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
  const identity = resolveIdentityHeaders(opts.identityHeaders)
  if (typeof closeOnTokenExpiry !== 'boolean') fail('closeOnTokenExpiry must be a boolean')

  return Object.freeze({
    path,
    backends,
    resolveBackend: opts.resolveBackend as WsGatewayOptions['resolveBackend'],
    idHeader: idHeader.toLowerCase(),
    jwt: opts.jwt as ResolvedOptions['jwt'],
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
    drainTimeout: checkInteger(opts, 'drainTimeout', DEFAULT_DRAIN_TIMEOUT, 0),
    shutdownCloseCode: checkChoice(opts, 'shutdownCloseCode', 1001, [1001, 1012] as const),
    closeOnTokenExpiry,
    slowConsumerTimeout: checkInteger(opts, 'slowConsumerTimeout', DEFAULT_SLOW_CONSUMER_TIMEOUT, 0),
    slowConsumerCloseCode: checkChoice(opts, 'slowConsumerCloseCode', 1008, [1008, 1013] as const),
    rateLimit: resolveRateLimit(opts.rateLimit),
    cluster: resolveCluster(opts.cluster),
    managementApi: resolveManagementApi(opts.managementApi)
  })
}
