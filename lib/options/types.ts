import type { FastifyRequest, RegisterOptions } from 'fastify'
import type { VerifierOptions } from 'fast-jwt'
import type { Redis, RedisOptions } from 'ioredis'
import type { BackendOption, DnsOptions, MetricsOptions, ResolvedBackend } from './backend-types'
import type { MessagesOptions, ResolvedMessages } from './message-types'

export type {
  BackendConfig, BackendOption, BalanceMode, DnsOptions, EndpointSource, HealthOptions, MetricsOptions, ProbeOptions,
  ResolvedBackend
} from './backend-types'
export type { BackendTlsOptions } from './tls'

/**
 * The gateway's own JWT verification. `secret` is a shared secret (HS256 by default) or a
 * `{ public }` PEM key (its own family by default: RS256/384/512, PS*, ES256/384/512 by curve,
 * EdDSA); `private` may be given for symmetry with @fastify/jwt and is not used — the gateway only
 * verifies.
 */
export interface GatewayJwtOptions {
  secret: string | Buffer | { public: string | Buffer, private?: string | Buffer }
  verify?: GatewayJwtVerifyOptions
}

/**
 * fast-jwt's verify options (the engine of @fastify/jwt), less those that would undo what the
 * gateway relies on (`key`, `complete`, `ignoreExpiration`; `clockTolerance` is the gateway's own
 * option, in seconds). `maxAge` is in seconds, as @fastify/jwt takes it.
 */
export type GatewayJwtVerifyOptions = Pick<VerifierOptions,
'algorithms' | 'allowedAud' | 'allowedIss' | 'allowedSub' | 'allowedJti' | 'allowedNonce' | 'requiredClaims' |
'ignoreNotBefore' | 'checkTyp' | 'allowedCritHeaders' | 'cache' | 'cacheTTL' | 'errorCacheTTL' | 'clockTimestamp'
> & { maxAge?: number }

/** Headers sent to the backend on the handshake. */
export type UpstreamHeaders = Record<string, string | string[]>

/** The claims the gateway relies on; anything else in the token is the app's business. */
export interface TokenClaims {
  sub?: string
  exp: number
  [claim: string]: unknown
}

/**
 * The verified identity for the backend, in headers the client can never supply: a map of claim →
 * header name (`{ sub: 'x-user-sub' }`), or a function of the claims returning the headers.
 */
export type IdentityHeadersOption = Readonly<Record<string, string>> | ((claims: TokenClaims, request: FastifyRequest) => Record<string, string>)

/** Where the gateway finds the public keys of signed tokens: a JWKS, by the token's `kid`. */
export interface JwksOptions {
  /** The JWKS document's URL (`https:`, or `http:` on a loopback host), for tokens of one issuer. */
  url?: string
  /**
   * Or the issuers trusted to sign tokens: the keys come from the token's `iss`
   * (`<iss>/.well-known/jwks.json`, or the `jwks_uri` of its OpenID configuration with
   * `providerDiscovery`). A token whose `iss` is not listed is refused before anything is fetched.
   */
  issuers?: readonly string[]
  /** With `issuers`: find each issuer's JWKS through `<iss>/.well-known/openid-configuration`. Default false. */
  providerDiscovery?: boolean
  /** Milliseconds a fetched key is cached. Default 60000. */
  ttl?: number
  /** Keys cached at most. Default 100. */
  max?: number
  /** Milliseconds a JWKS fetch may take before the handshake is answered 503. Default 5000. */
  timeout?: number
  /**
   * Milliseconds during which, after a token named a `kid` the JWKS did not have, other never-seen
   * `kid`s are refused without a fetch (so random `kid`s cannot flood the issuer). Default 30000.
   */
  cooldown?: number
}

/** `jwt` options that verify tokens against a JWKS instead of a fixed secret or key. */
export interface JwksJwtOptions {
  jwks: JwksOptions
  /** fast-jwt verifier options (`allowedAud`, `allowedIss`, `algorithms` within the key's family, …). */
  verify?: Partial<Omit<VerifierOptions, 'key' | 'complete'>>
}

/**
 * Options of `fastify.register(wsGateway, options)`. The README has the table with defaults.
 * Fastify's own register options apply to the gateway's route: `prefix` is prepended to `path`
 * (`{ prefix: '/api' }` serves `/api/ws`), `logLevel` and `logSerializers` apply to its request
 * logs (a `tokenQuery` token stays redacted).
 */
export interface WsGatewayOptions extends Pick<RegisterOptions, 'prefix' | 'logLevel' | 'logSerializers'> {
  /** Route of the WebSocket endpoint. Default `/ws`. */
  path?: string
  /** Static map of backend ID → URL or config. */
  backends?: Record<string, BackendOption>
  /** Resolver for IDs not in `backends` (service discovery); `undefined` means unknown (404). */
  resolveBackend?: (id: string, request: FastifyRequest) => BackendOption | undefined | Promise<BackendOption | undefined>
  /** Header carrying the backend ID. Default `id`. */
  idHeader?: string
  /**
   * The gateway's own JWT verification: `{ secret, verify? }`, or `{ jwks, verify? }` for keys from a
   * JWKS. Omit to reuse the app's own @fastify/jwt registration.
   */
  jwt?: GatewayJwtOptions | JwksJwtOptions
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
   * Client headers never copied to the backend (identity and forwarding headers a client could
   * forge): names, or prefixes ending in `*`. An array extends `DEFAULT_DROP_HEADERS`; a function
   * receives that list and returns the whole list to use. Default `DEFAULT_DROP_HEADERS`.
   */
  dropHeaders?: readonly string[] | ((defaults: readonly string[]) => readonly string[])
  /** Pass the verified token's claims to the backend in headers the client can never supply. Default: none. */
  identityHeaders?: IdentityHeadersOption
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
  /**
   * The connection registry across instances, on Redis (see the README's cluster guide). Only
   * the app's first gateway registration may set it; without it the registry is this process's.
   */
  cluster?: ClusterOptions
  /** The opt-in REST surface over the connection registry (`/@connections`). Default: off. */
  managementApi?: ManagementApiOptions | false
  /**
   * Message mode: terminate the client's messages and route each to an HTTP, WebSocket or queue
   * backend instead of relaying frames (see the README's "Message mode"). No ID header is needed.
   */
  messages?: MessagesOptions
  /** The DNS client for `dns` backends (name servers, re-resolution bounds). */
  dns?: DnsOptions
  /** Prometheus metrics: `true` for the defaults, or where to register them; off unless given. */
  metrics?: MetricsOptions | true
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
  /** `jwt: { jwks, verify? }`: keys from a JWKS (checked when its verifier is made, at registration). */
  readonly jwks?: JwksJwtOptions
  /** The gateway's own verifier for `jwt: { secret, verify? }`. Neither: the app's @fastify/jwt. */
  readonly verifyToken?: (token: string) => unknown
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
  /** Whether a client header (lower-case name) is dropped rather than copied to the backend. */
  readonly isDroppedHeader: (name: string) => boolean
  /** The identity headers for a verified client (the map form compiled to a function). */
  readonly identityHeaders?: (claims: TokenClaims, request: FastifyRequest) => Record<string, string>
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
  readonly cluster?: ResolvedCluster
  readonly managementApi?: ResolvedManagementApi
  readonly prefix?: string
  readonly logLevel?: RegisterOptions['logLevel']
  readonly logSerializers?: RegisterOptions['logSerializers']
  readonly messages?: ResolvedMessages

  readonly dns: Readonly<Required<Omit<DnsOptions, 'servers'>>> & { readonly servers?: readonly string[] }
  readonly metrics: Readonly<MetricsOptions> | undefined
}

/** The relay engines: frames over the raw sockets, or messages through ws. */
export type RelayEngine = 'passthrough' | 'ws'

/** The `cluster` option: the connection registry across instances, on Redis. */
export interface ClusterOptions {
  /** A Redis URL, ioredis options, or an ioredis instance of the app's (used, never closed). */
  redis: string | RedisOptions | Redis
  /** Prefix of every key the gateway writes. Default `'wsg'`. */
  prefix?: string
  /** This instance's name in ids and keys: letters, digits, `_`, `-`. Default: random. */
  nodeId?: string
  /** Milliseconds an instance stays listed after it stops refreshing its liveness key. Default 10000. */
  nodeTtl?: number
  /** Milliseconds a Redis command may take before the call rejects `CLUSTER_UNAVAILABLE`. Default 1000. */
  commandTimeout?: number
}

export interface ResolvedCluster {
  readonly redis: string | RedisOptions | Redis
  readonly prefix: string
  readonly nodeId?: string
  readonly nodeTtl: number
  readonly commandTimeout: number
}

/** The opt-in REST surface over the connection registry, shaped like AWS API Gateway's `@connections`. */
export interface ManagementApiOptions {
  /** Where its routes go. Default `'/@connections'`. */
  prefix?: string
  /**
   * Decides each request (required: the surface is never open by default). Requests without an
   * `Authorization` header are refused 401 before it is asked; false → 403.
   */
  authorize: (request: FastifyRequest) => boolean | Promise<boolean>
}

export interface ResolvedManagementApi {
  readonly prefix: string
  readonly authorize: ManagementApiOptions['authorize']
}
