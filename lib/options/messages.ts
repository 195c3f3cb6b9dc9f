import { checkFunction, checkInteger, checkKeys, checkTimeout, fail, isPlainObject } from './check'
import { DEFAULT_BREAKER_FAILURES, DEFAULT_BREAKER_RESET_AFTER, DEFAULT_MAX_IN_FLIGHT, DEFAULT_MESSAGE_TIMEOUT, DEFAULT_QUEUE_MAX_LENGTH } from './defaults'
import type {
  BackendHeaders, CircuitBreakerOptions, HttpTarget, MessageHook, MessageRateLimit, MessageRoute, ResolvedHttpTarget,
  ResolvedMessages, ResolvedQueueTarget, ResolvedRoute, ResolvedTarget, ResolvedWsTarget, RouteKeyFunction
} from './message-types'
import type { BackendTlsOptions } from './tls'

const MESSAGES_KEYS = new Set(['routeKey', 'correlationId', 'maxInFlight', 'timeout', 'schema', 'rateLimit', 'circuitBreaker', 'onMessage', 'routes', 'connect', 'disconnect'])
const ROUTE_KEYS = new Set(['http', 'ws', 'queue', 'schema', 'rateLimit', 'circuitBreaker', 'onMessage', 'timeout'])
const HTTP_KEYS = new Set(['url', 'method', 'headers', 'timeout', 'tls'])
const QUEUE_KEYS = new Set(['stream', 'replyTimeout', 'maxLength'])
const METHODS = ['POST', 'PUT', 'PATCH', 'DELETE'] as const
const DOTTED_PATH = /^[^.]+(\.[^.]+)*$/

/** What a route inherits from the registration: its middleware. */
export interface RouteDefaults {
  readonly timeout: number
  readonly rateLimit: MessageRateLimit | false
  readonly circuitBreaker: Required<CircuitBreakerOptions> | false
}

/** A getter for a dotted path into a parsed message (`'meta.id'` → `message.meta.id`). */
function pathGetter (value: unknown, where: string): (message: unknown) => unknown {
  if (typeof value !== 'string' || !DOTTED_PATH.test(value)) fail(`${where} must be a dotted path such as "action" or "meta.action"`)
  const steps = value.split('.')
  return (message) => {
    let node = message
    for (const step of steps) {
      if (typeof node !== 'object' || node === null || !Object.hasOwn(node, step)) return undefined
      node = (node as Record<string, unknown>)[step]
    }
    return node
  }
}

function resolveRouteKey (value: unknown): RouteKeyFunction {
  if (typeof value === 'function') return value as RouteKeyFunction
  const get = pathGetter(value, 'messages.routeKey')
  return (message) => {
    const key = get(message)
    return typeof key === 'string' ? key : undefined
  }
}

function resolveRateLimit (value: unknown, where: string, fallback: MessageRateLimit | false): MessageRateLimit | false {
  if (value === undefined) return fallback
  if (value === false) return false
  if (!isPlainObject(value)) fail(`${where} must be an object or false`)
  checkKeys(value, new Set(['messagesPerSecond']), `${where}.`)
  if (value.messagesPerSecond === undefined) fail(`${where}.messagesPerSecond is required`)
  return Object.freeze({ messagesPerSecond: checkInteger(value, 'messagesPerSecond', 0, 1, `${where}.`) })
}

function resolveBreaker (value: unknown, where: string, fallback: Required<CircuitBreakerOptions> | false): Required<CircuitBreakerOptions> | false {
  if (value === undefined) return fallback
  if (value === false) return false
  if (!isPlainObject(value)) fail(`${where} must be an object or false`)
  checkKeys(value, new Set(['failures', 'resetAfter']), `${where}.`)
  return Object.freeze({
    failures: checkInteger(value, 'failures', DEFAULT_BREAKER_FAILURES, 1, `${where}.`),
    resetAfter: checkTimeout(value, 'resetAfter', DEFAULT_BREAKER_RESET_AFTER, 1, false, `${where}.`)
  })
}

function resolveUrl (value: unknown, protocols: string[], where: string): URL {
  let url: URL | undefined
  try {
    url = new URL(String(value))
  } catch {}
  if (url === undefined || !protocols.includes(url.protocol) || url.hash !== '') {
    fail(`${where} must be a ${protocols.join(' or ')} URL without a #fragment`)
  }
  return url
}

function resolveHeaders (value: unknown, where: string): BackendHeaders {
  if (value === undefined) return {}
  if (typeof value === 'function') return value as BackendHeaders
  if (!isPlainObject(value) || !Object.values(value).every((v) => typeof v === 'string')) {
    fail(`${where} must be an object of string values or a function`)
  }
  return Object.freeze({ ...value as Record<string, string> })
}

/** Validates an HTTP target: a URL string or `{ url, method?, headers?, timeout?, tls? }`. */
export function resolveHttpTarget (value: unknown, where: string): ResolvedHttpTarget {
  const input = typeof value === 'string' ? { url: value } : value
  if (!isPlainObject(input)) fail(`${where} must be a URL string or an object with a url`)
  checkKeys(input, HTTP_KEYS, `${where}.`)
  const method = (input.method ?? 'POST') as HttpTarget['method']
  if (!METHODS.includes(method as typeof METHODS[number])) fail(`${where}.method must be one of ${METHODS.join(', ')}`)
  if (input.tls !== undefined && !isPlainObject(input.tls)) fail(`${where}.tls must be an object of TLS options`)
  const url = resolveUrl(input.url, ['http:', 'https:'], `${where}.url`)
  return Object.freeze({
    kind: 'http',
    url,
    path: `${url.pathname}${url.search}`,
    method: method as NonNullable<HttpTarget['method']>,
    headers: resolveHeaders(input.headers, `${where}.headers`),
    timeout: input.timeout === undefined ? undefined : checkTimeout(input, 'timeout', 0, 1, false, `${where}.`),
    tls: Object.freeze({ ...input.tls as BackendTlsOptions })
  })
}

function resolveWsTarget (value: unknown, where: string): ResolvedWsTarget {
  const input = typeof value === 'string' ? { url: value } : value
  if (!isPlainObject(input)) fail(`${where} must be a URL string or an object with a url`)
  const { url, headers, ...tls } = input
  return Object.freeze({
    kind: 'ws',
    url: resolveUrl(url, ['ws:', 'wss:'], `${where}.url`),
    headers: resolveHeaders(headers, `${where}.headers`),
    tls: Object.freeze(tls as BackendTlsOptions)
  })
}

function resolveQueueTarget (value: unknown, where: string): ResolvedQueueTarget {
  if (!isPlainObject(value)) fail(`${where} must be an object with a stream`)
  checkKeys(value, QUEUE_KEYS, `${where}.`)
  if (typeof value.stream !== 'string' || value.stream === '') fail(`${where}.stream must be a non-empty string`)
  return Object.freeze({
    kind: 'queue',
    stream: value.stream,
    replyTimeout: value.replyTimeout === undefined ? undefined : checkTimeout(value, 'replyTimeout', 0, 1, false, `${where}.`),
    maxLength: checkInteger(value, 'maxLength', DEFAULT_QUEUE_MAX_LENGTH, 1, `${where}.`)
  })
}

function resolveTarget (input: Record<string, unknown>, where: string): ResolvedTarget {
  const kinds = (['http', 'ws', 'queue'] as const).filter((kind) => input[kind] !== undefined)
  if (kinds.length !== 1) fail(`${where} must have exactly one of http, ws, queue`)
  if (kinds[0] === 'http') return resolveHttpTarget(input.http, `${where}.http`)
  if (kinds[0] === 'ws') return resolveWsTarget(input.ws, `${where}.ws`)
  return resolveQueueTarget(input.queue, `${where}.queue`)
}

/**
 * Validates one route, given at registration or later through `fastify.wsGateway.route()`;
 * middleware it leaves unset comes from the registration's `defaults`.
 */
export function resolveRoute (key: unknown, definition: MessageRoute | unknown, defaults: RouteDefaults): ResolvedRoute {
  if (typeof key !== 'string' || key === '') fail('a route key must be a non-empty string')
  const where = `messages.routes["${key}"]`
  if (!isPlainObject(definition)) fail(`${where} must be an object`)
  checkKeys(definition, ROUTE_KEYS, `${where}.`)
  checkFunction(definition.onMessage, `${where}.onMessage`)
  return Object.freeze({
    key,
    target: resolveTarget(definition, where),
    schema: definition.schema,
    rateLimit: resolveRateLimit(definition.rateLimit, `${where}.rateLimit`, defaults.rateLimit),
    circuitBreaker: resolveBreaker(definition.circuitBreaker, `${where}.circuitBreaker`, defaults.circuitBreaker),
    onMessage: definition.onMessage as MessageHook | undefined,
    timeout: checkTimeout(definition, 'timeout', defaults.timeout, 1, false, `${where}.`)
  })
}

function resolveHook (value: unknown, where: string): ResolvedHttpTarget | undefined {
  if (value === undefined) return undefined
  if (!isPlainObject(value)) fail(`${where} must be an object with http`)
  checkKeys(value, new Set(['http']), `${where}.`)
  return resolveHttpTarget(value.http, `${where}.http`)
}

/** Validates the `messages` option; throws `FST_WS_GATEWAY_INVALID_OPTION` naming the option at fault. */
export function resolveMessages (input: unknown): ResolvedMessages {
  if (!isPlainObject(input)) fail('messages must be an object')
  checkKeys(input, MESSAGES_KEYS, 'messages.')
  checkFunction(input.onMessage, 'messages.onMessage')
  const defaults: RouteDefaults = {
    timeout: checkTimeout(input, 'timeout', DEFAULT_MESSAGE_TIMEOUT, 1, false, 'messages.'),
    rateLimit: resolveRateLimit(input.rateLimit, 'messages.rateLimit', false),
    circuitBreaker: resolveBreaker(input.circuitBreaker, 'messages.circuitBreaker', false)
  }
  const routesInput = input.routes ?? {}
  if (!isPlainObject(routesInput)) fail('messages.routes must be an object of routes by key')
  const routes = new Map<string, ResolvedRoute>()
  for (const [key, definition] of Object.entries(routesInput)) routes.set(key, resolveRoute(key, definition, defaults))
  return Object.freeze({
    routeKey: resolveRouteKey(input.routeKey ?? 'action'),
    correlationId: pathGetter(input.correlationId ?? 'id', 'messages.correlationId'),
    maxInFlight: checkInteger(input, 'maxInFlight', DEFAULT_MAX_IN_FLIGHT, 1, 'messages.'),
    timeout: defaults.timeout,
    schema: input.schema,
    rateLimit: defaults.rateLimit,
    circuitBreaker: defaults.circuitBreaker,
    onMessage: input.onMessage as MessageHook | undefined,
    routes,
    connect: resolveHook(input.connect, 'messages.connect'),
    disconnect: resolveHook(input.disconnect, 'messages.disconnect')
  })
}
