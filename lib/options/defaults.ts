import type { BalanceMode, DnsOptions, HealthOptions, RateLimitOptions, RelayEngine } from './types'

/* Every default, named; the README's options table lists them. */

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

/**
 * Lower bounds of the timing options, in ms. The timers that end a connection for silence or
 * slowness (heartbeat, idle, slow consumer) are either off (0) or at least a second: shorter, they
 * turn normal network jitter into closes, and a heartbeat becomes a load of its own (a ping per
 * connection per tick). A backend needs at least a round trip to accept, and a close handshake one
 * to finish.
 */
export const MIN_HEARTBEAT_INTERVAL = 1_000
export const MIN_IDLE_TIMEOUT = 1_000
export const MIN_SLOW_CONSUMER_TIMEOUT = 1_000
export const MIN_CONNECT_TIMEOUT = 100
export const MIN_CLOSE_TIMEOUT = 100
/** Node's timers overflow past this many ms (about 24.8 days) and fire at once: no timing option may exceed it. */
export const MAX_TIMER_DELAY = 2 ** 31 - 1

/** Backend IDs are only ever looked up, never pasted into a URL; this keeps them boring. */
export const BACKEND_ID_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/
export const HEADER_NAME_PATTERN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/

/**
 * Client headers dropped by default (`dropHeaders`): the families by which a proxy, a load
 * balancer or an identity-aware front end tells a backend who the client is or what it asked for.
 * A client that writes one itself is forging it. Names, or prefixes ending in `*`; the README
 * says what each family is.
 */
export const DEFAULT_DROP_HEADERS: readonly string[] = Object.freeze([
  // where the request came from (the gateway writes its own X-Forwarded-*, Forwarded, X-Real-IP)
  'forwarded', 'x-forwarded-*', 'x-real-ip', 'x-client-ip', 'x-cluster-client-ip', 'true-client-ip',
  'x-proxyuser-ip', 'fastly-client-ip', 'cf-*', 'x-appengine-*',
  // what it asked for, as rewritten by a front proxy
  'x-original-*', 'x-rewrite-url',
  // proxy and platform internals
  'x-envoy-*', 'x-amzn-*',
  // an identity vouched for by an authenticating proxy
  'x-user', 'x-user-*', 'x-auth-*', 'x-authenticated-*', 'x-remote-*', 'remote-user',
  'x-consumer-*', 'x-credential-*', 'x-anonymous-consumer',
  'x-ms-client-principal*', 'x-ms-token-*', 'x-goog-authenticated-user-*', 'x-goog-iap-jwt-assertion',
  // a client certificate checked by a TLS-terminating proxy
  'x-ssl-*', 'ssl-client-*', 'x-client-cert*', 'x-arr-clientcert', 'x-arr-ssl'
])

/** `jwt.jwks` defaults: key cache lifetime and size, fetch timeout, and the unknown-`kid` cooldown (ms). */
export const DEFAULT_JWKS = Object.freeze({ ttl: 60_000, max: 100, timeout: 5_000, cooldown: 30_000 })

/* Message mode. */
export const DEFAULT_MAX_IN_FLIGHT = 16
export const DEFAULT_MESSAGE_TIMEOUT = 10_000
export const DEFAULT_QUEUE_MAX_LENGTH = 10_000
export const DEFAULT_BREAKER_FAILURES = 5
export const DEFAULT_BREAKER_RESET_AFTER = 10_000
export const DEFAULT_BALANCE: BalanceMode = 'round-robin'
export const DEFAULT_HEALTH: Readonly<Required<HealthOptions>> = Object.freeze({
  failures: 3,
  ejectTime: 10_000,
  maxEjectTime: 300_000
})
export const DEFAULT_PROBE_INTERVAL = 10_000
export const DEFAULT_PROBE_TIMEOUT = 2_000
export const DEFAULT_DNS: Readonly<Required<Omit<DnsOptions, 'servers'>>> = Object.freeze({
  minInterval: 1_000,
  maxInterval: 60_000,
  timeout: 2_000,
  tries: 2
})
