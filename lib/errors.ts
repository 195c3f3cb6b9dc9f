import createError from '@fastify/error'

/*
 * Every error the gateway answers with before the upgrade. Messages are fixed strings (or carry
 * only values the client sent or may know), so nothing internal — backend addresses, library
 * error text — ever reaches a client. The README lists them all.
 */

/** A plugin option is invalid; thrown at registration. */
export const InvalidOptionError = createError('FST_WS_GATEWAY_INVALID_OPTION', 'Invalid fastify-ws-gateway option: %s')

/** A plain HTTP request reached the WebSocket route. */
export const UpgradeRequiredError = createError('FST_WS_GATEWAY_UPGRADE_REQUIRED', 'This route only accepts WebSocket upgrades', 426)

/** The upgrade request is not a valid RFC 6455 handshake. */
export const BadHandshakeError = createError('FST_WS_GATEWAY_BAD_HANDSHAKE', 'Invalid WebSocket handshake: %s', 400)

/** The browser Origin is not in `allowedOrigins`. */
export const OriginForbiddenError = createError('FST_WS_GATEWAY_ORIGIN_FORBIDDEN', 'Origin not allowed', 403)

/** No `Authorization: Bearer <token>` header (or it is not a Bearer credential). */
export const NoTokenError = createError('FST_WS_GATEWAY_NO_TOKEN', 'Missing Bearer token', 401)

/** The token failed verification: signature, algorithm, claims or format. */
export const InvalidTokenError = createError('FST_WS_GATEWAY_INVALID_TOKEN', 'Invalid token: %s', 401)

/** The request carries two different tokens (e.g. a header and a subprotocol token). */
export const ConflictingTokensError = createError('FST_WS_GATEWAY_CONFLICTING_TOKENS', 'The request carries more than one token', 400)

/** The token is past its `exp` (beyond the clock tolerance). */
export const TokenExpiredError = createError('FST_WS_GATEWAY_TOKEN_EXPIRED', 'Token expired', 401)

/** The JWKS holding the token's key could not be fetched (down, slow, or not a JWKS) and no cached copy exists. */
export const KeysUnavailableError = createError('FST_WS_GATEWAY_KEYS_UNAVAILABLE', 'The token signing keys could not be fetched', 503)

/** The backend ID header is missing. */
export const NoBackendIdError = createError('FST_WS_GATEWAY_NO_BACKEND_ID', 'Missing backend ID header "%s"', 400)

/** The backend ID header is duplicated or does not match `^[A-Za-z0-9_.-]{1,64}$`. */
export const BadBackendIdError = createError('FST_WS_GATEWAY_BAD_BACKEND_ID', 'Invalid backend ID: %s', 400)

/** No backend is configured (or resolved) for the ID. */
export const UnknownBackendError = createError('FST_WS_GATEWAY_UNKNOWN_BACKEND', 'Unknown backend ID "%s"', 404)

/** `authorize()` returned false for this subject and backend. */
export const ForbiddenError = createError('FST_WS_GATEWAY_FORBIDDEN', 'Access to this backend is not allowed', 403)

/** `authorize()` threw or rejected; the cause is logged, not sent. */
export const AuthorizeFailedError = createError('FST_WS_GATEWAY_AUTHORIZE_FAILED', 'The access check failed', 500)

/**
 * One of the app's other callbacks (`rewriteRequestHeaders`, an `allowedOrigins` or
 * `identityHeaders` function) threw, rejected or returned something unusable; the cause is
 * logged, not sent.
 */
export const CallbackFailedError = createError('FST_WS_GATEWAY_CALLBACK_FAILED', 'An application callback failed', 500)

/** The backend answered the handshake with a 4xx status; its status is passed through. */
export const BackendRefusedError = createError('FST_WS_GATEWAY_BACKEND_REFUSED', 'The backend refused the connection with status %s', 400)

/** The backend is unreachable, answered something other than a 4xx or 101, or misbehaved. */
export const BadGatewayError = createError('FST_WS_GATEWAY_BAD_GATEWAY', 'The backend could not be reached', 502)

/** The backend did not accept the connection within `connectTimeout`. */
export const GatewayTimeoutError = createError('FST_WS_GATEWAY_TIMEOUT', 'The backend did not answer in time', 504)

/** The client already holds `maxConnectionsPerIp` or `maxConnectionsPerSubject` connections. */
export const TooManyConnectionsError = createError('FST_WS_GATEWAY_TOO_MANY_CONNECTIONS', 'Too many connections for this %s', 429)

/** The gateway already holds `maxConnections` connections. */
export const AtCapacityError = createError('FST_WS_GATEWAY_AT_CAPACITY', 'The gateway is at capacity', 503)

/** The server is shutting down and takes no new connections. */
export const ShuttingDownError = createError('FST_WS_GATEWAY_SHUTTING_DOWN', 'The gateway is shutting down', 503)

/** The client disconnected while the gateway was still connecting to the backend. */
export const ClientGoneError = createError('FST_WS_GATEWAY_CLIENT_GONE', 'The client went away during the handshake', 499)

/*
 * The connection registry API (`fastify.wsGateway.send()` …, and its REST surface): each rejection
 * carries the HTTP status the REST surface answers with.
 */

/** The connection is unknown, already closed, or its instance is gone. */
export const ConnectionGoneError = createError('FST_WS_GATEWAY_CONNECTION_GONE', 'The connection is gone', 410)

/** `close()` was given a code a server may not send (see the README), or a reason that is not text. */
export const InvalidCloseCodeError = createError('FST_WS_GATEWAY_INVALID_CLOSE_CODE', 'Invalid close code: %s', 400)

/** The data is larger than the `maxPayload` of the connection's path. */
export const PayloadTooLargeError = createError('FST_WS_GATEWAY_PAYLOAD_TOO_LARGE', 'The message is larger than the connection accepts (%s bytes)', 413)

/** The data is not a string or a Buffer, or is sent as text without being valid UTF-8. */
export const InvalidPayloadError = createError('FST_WS_GATEWAY_INVALID_PAYLOAD', 'Invalid message: %s', 400)

/** The client has more than `highWaterMark` bytes waiting to be sent: it is not reading. */
export const ClientBufferFullError = createError('FST_WS_GATEWAY_CLIENT_BUFFER_FULL', 'The client is not reading fast enough', 429)

/** Redis (the cluster registry) did not answer within `cluster.commandTimeout`. */
export const ClusterUnavailableError = createError('FST_WS_GATEWAY_CLUSTER_UNAVAILABLE', 'The cluster registry is unavailable', 503)

/** A `list()` cursor that this gateway did not hand out, or a bad query value. */
export const InvalidQueryError = createError('FST_WS_GATEWAY_INVALID_QUERY', 'Invalid query: %s', 400)

/** The management API was called without credentials. */
export const NoCredentialsError = createError('FST_WS_GATEWAY_NO_CREDENTIALS', 'Missing credentials', 401)

/** The management API's `authorize` refused the request. */
export const ManagementForbiddenError = createError('FST_WS_GATEWAY_MANAGEMENT_FORBIDDEN', 'Not allowed', 403)

/*
 * Message mode: the codes of the error frames the gateway answers a message with. The socket stays
 * open; the frame carries the code, the status and the message (see lib/messages/envelope.ts).
 */

/** A message is not JSON, has no route key, has a bad correlation id or fails its schema. */
export const InvalidMessageError = createError('FST_WS_GATEWAY_INVALID_MESSAGE', 'Invalid message: %s', 400)

/** No route for the message's key, and no `$default` route. */
export const UnknownRouteError = createError('FST_WS_GATEWAY_UNKNOWN_ROUTE', 'Unknown route "%s"', 404)

/** The route's (or the registration's) per-connection rate limit is exceeded. */
export const RateLimitedError = createError('FST_WS_GATEWAY_RATE_LIMITED', 'Too many messages, retry later', 429)

/** The HTTP backend answered 4xx; the frame carries its status and its body as `data`. */
export const BackendRejectedError = createError('FST_WS_GATEWAY_BACKEND_REJECTED', 'The backend rejected the message', 400)

/** The backend answered 5xx (an HTTP backend, or a queue worker that failed); its body is never forwarded. */
export const BackendErrorError = createError('FST_WS_GATEWAY_BACKEND_ERROR', 'The backend failed to handle the message', 502)

/** The route's circuit breaker is open after repeated backend failures. */
export const CircuitOpenError = createError('FST_WS_GATEWAY_CIRCUIT_OPEN', 'The backend is unavailable, retry later', 503)

/** The queue (Redis) could not take the request. */
export const QueueUnavailableError = createError('FST_WS_GATEWAY_QUEUE_UNAVAILABLE', 'The queue is unavailable', 503)

/** An app hook (`routeKey`, `onMessage`, a route's `headers`) threw an uncoded error; the cause is logged, not sent. */
export const MessageHookFailedError = createError('FST_WS_GATEWAY_MESSAGE_HOOK_FAILED', 'The gateway failed to handle the message', 500)
