import type { FastifyReply, FastifyRequest } from 'fastify'
import type { ResolvedBackend, ResolvedOptions, UpstreamHeaders } from './options'
import { BadHandshakeError, UpgradeRequiredError } from './errors'

const WEBSOCKET_KEY = /^[+/0-9A-Za-z]{22}==$/

/**
 * Headers never copied to the backend: hop-by-hop ones (RFC 9110 §7.6.1), the WebSocket
 * handshake's own (the upstream client makes its own key, version and extensions, and the
 * protocols are sent without the gateway's token marker), the host, and
 * forwarding headers a client could forge (the gateway writes its own X-Forwarded-*).
 */
const NOT_FORWARDED = new Set([
  'connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection', 'te',
  'trailer', 'transfer-encoding', 'upgrade', 'http2-settings', 'host', 'content-length',
  'sec-websocket-key', 'sec-websocket-version', 'sec-websocket-extensions', 'sec-websocket-accept',
  'sec-websocket-protocol',
  'forwarded', 'x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'x-real-ip'
])

/**
 * Rejects what is not an RFC 6455 handshake before any backend work is done: a plain request gets
 * 426, a non-websocket upgrade (e.g. h2c) or a malformed key 400, and a version other than 13
 * (ws would also take 8) 426 with the version we speak.
 */
export function checkHandshake (request: FastifyRequest, reply: FastifyReply): void {
  if (!request.ws) {
    reply.header('upgrade', 'websocket')
    throw new UpgradeRequiredError()
  }
  const { upgrade, 'sec-websocket-version': version, 'sec-websocket-key': key } = request.headers
  if (upgrade?.toLowerCase() !== 'websocket') throw new BadHandshakeError('Upgrade must be websocket')
  if (typeof key !== 'string' || !WEBSOCKET_KEY.test(key)) throw new BadHandshakeError('bad Sec-WebSocket-Key')
  if (version !== '13') {
    reply.header('sec-websocket-version', '13')
    throw new UpgradeRequiredError()
  }
}

/** What a client offered in `Sec-WebSocket-Protocol`. */
export interface ProtocolOffer {
  /** The protocols meant for the backend, in the client's order. */
  readonly protocols: string[]
  /** The token, when the client led its offer with the `tokenProtocol` marker and a token. */
  readonly token?: string
}

/**
 * Splits the client's subprotocol list (RFC 6455 §4.1: comma-separated): a browser that cannot
 * set headers sends `[marker, token, ...protocols]`; the marker and the token are the gateway's
 * and never reach the backend.
 */
export function protocolOffer (request: FastifyRequest, marker: string | false): ProtocolOffer {
  const header = request.headers['sec-websocket-protocol']
  const offered = header === undefined ? [] : header.split(',').map((p) => p.trim()).filter((p) => p !== '')
  if (marker === false || offered[0] !== marker) return { protocols: offered }
  return { protocols: offered.slice(2), token: offered[1] }
}

/** The query parameters that are the gateway's own, never forwarded. */
function ownParameters (opts: ResolvedOptions): Set<string> {
  return new Set([opts.idQuery, opts.tokenQuery].filter((name) => name !== undefined))
}

/** The raw query string less the gateway's own parameters, otherwise byte for byte. */
function forwardedQuery (query: string, own: Set<string>): string {
  if (own.size === 0) return query
  return query.split('&').filter((pair) => {
    const name = pair.split('=', 1)[0]
    let decoded = name
    try { decoded = decodeURIComponent(name.replace(/\+/g, ' ')) } catch {}
    return !own.has(decoded)
  }).join('&')
}

/** The backend URL with the client's query string (less the gateway's parameters) appended. */
export function upstreamUrl (request: FastifyRequest, backend: ResolvedBackend, opts: ResolvedOptions): URL {
  const url = new URL(backend.url)
  const queryAt = request.url.indexOf('?')
  const query = queryAt === -1 ? '' : forwardedQuery(request.url.slice(queryAt + 1), ownParameters(opts))
  if (query !== '') url.search = url.search === '' ? query : `${url.search.slice(1)}&${query}`
  return url
}

/**
 * Fastify's request log serializer with the `tokenQuery` parameter's value replaced by
 * `[redacted]`, so a token in the URL never reaches a log line.
 */
export function redactingRequestSerializer (tokenQuery: string): (request: FastifyRequest) => Record<string, unknown> {
  const pattern = new RegExp(`([?&]${tokenQuery.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}=)[^&]*`, 'g')
  return (request) => ({
    method: request.method,
    url: request.url.replace(pattern, '$1[redacted]'),
    version: request.headers['accept-version'],
    host: request.host,
    remoteAddress: request.ip,
    remotePort: request.socket.remotePort
  })
}

/**
 * The handshake headers for the backend: the client's end-to-end headers, `X-Forwarded-*` from
 * what Fastify knows of the client (honouring its `trustProxy`), the backend's configured headers,
 * then the app's `rewriteRequestHeaders`.
 */
export function upstreamHeaders (request: FastifyRequest, backend: ResolvedBackend, opts: ResolvedOptions): UpstreamHeaders {
  // Every upgrade request has a Connection header (Node routes it as an upgrade because of it).
  const named = new Set(String(request.headers.connection).toLowerCase().split(',').map((t) => t.trim()))
  const headers: UpstreamHeaders = {}
  for (const [name, value] of Object.entries(request.headers)) {
    if (value !== undefined && !NOT_FORWARDED.has(name) && !named.has(name)) headers[name] = value
  }
  headers['x-forwarded-for'] = request.ip
  headers['x-forwarded-proto'] = request.protocol
  headers['x-forwarded-host'] = request.host
  Object.assign(headers, backend.headers)
  return opts.rewriteRequestHeaders === undefined ? headers : opts.rewriteRequestHeaders(request, headers)
}
