import type { FastifyRequest } from 'fastify'
import type { ResolvedBackend, ResolvedOptions, UpstreamHeaders } from '../options/types'

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
