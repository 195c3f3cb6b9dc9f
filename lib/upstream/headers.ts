import type { FastifyRequest } from 'fastify'
import { callApp } from '../callbacks'
import { decodedName } from '../handshake/query'
import { headersProblem } from '../options/check'
import type { ResolvedBackend, ResolvedOptions, TokenClaims, UpstreamHeaders } from '../options/types'
import { forwardingHeaders } from './forwarding'

/**
 * Headers never copied to the backend whatever `dropHeaders` says: hop-by-hop ones (RFC 9110
 * §7.6.1), the WebSocket handshake's own (the upstream client makes its own key, version and
 * extensions, and the protocols are sent without the gateway's token marker) and the host.
 */
const NOT_FORWARDED = new Set([
  'connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection', 'te',
  'trailer', 'transfer-encoding', 'upgrade', 'http2-settings', 'host', 'content-length',
  'sec-websocket-key', 'sec-websocket-version', 'sec-websocket-extensions', 'sec-websocket-accept',
  'sec-websocket-protocol'
])

/** The query parameters that are the gateway's own, never forwarded. */
function ownParameters (opts: ResolvedOptions): Set<string> {
  return new Set([opts.idQuery, opts.tokenQuery].filter((name) => name !== undefined))
}

/** The raw query string less the gateway's own parameters, otherwise byte for byte. */
function forwardedQuery (query: string, own: Set<string>): string {
  if (own.size === 0) return query
  return query.split('&').filter((pair) => !own.has(decodedName(pair))).join('&')
}

/** The endpoint's URL with the client's query string (less the gateway's parameters) appended. */
export function upstreamUrl (request: FastifyRequest, endpointUrl: URL, opts: ResolvedOptions): URL {
  const url = new URL(endpointUrl)
  const queryAt = request.url.indexOf('?')
  const query = queryAt === -1 ? '' : forwardedQuery(request.url.slice(queryAt + 1), ownParameters(opts))
  if (query !== '') url.search = url.search === '' ? query : `${url.search.slice(1)}&${query}`
  return url
}

/** The headers an app callback returned, if Node can send them; otherwise it throws (see `callApp`). */
function sendable (headers: unknown): UpstreamHeaders {
  const problem = headersProblem(headers, true)
  if (problem !== undefined) throw new TypeError(`headers${problem}`)
  return headers as UpstreamHeaders
}

/**
 * The handshake headers for the backend, in this order (later ones win): the client's end-to-end
 * headers less `dropHeaders`; the forwarding headers the gateway writes from what it saw (see
 * `forwardingHeaders`); the backend's configured headers; the verified identity
 * (`identityHeaders`); then the app's `rewriteRequestHeaders`. A callback that throws or returns
 * headers Node cannot send is answered 500 `CALLBACK_FAILED` (see `callApp`).
 */
export function upstreamHeaders (request: FastifyRequest, backend: ResolvedBackend, opts: ResolvedOptions): UpstreamHeaders {
  // Every upgrade request has a Connection header (Node routes it as an upgrade because of it).
  const named = new Set(String(request.headers.connection).toLowerCase().split(',').map((t) => t.trim()))
  const headers: UpstreamHeaders = {}
  for (const [name, value] of Object.entries(request.headers)) {
    if (value !== undefined && !NOT_FORWARDED.has(name) && !named.has(name) && !opts.isDroppedHeader(name)) headers[name] = value
  }
  Object.assign(headers, forwardingHeaders(request), backend.headers)
  const { identityHeaders, rewriteRequestHeaders } = opts
  if (identityHeaders !== undefined) {
    Object.assign(headers, callApp(request, 'identityHeaders', () => sendable(identityHeaders(request.user as TokenClaims, request))))
  }
  if (rewriteRequestHeaders === undefined) return headers
  return callApp(request, 'rewriteRequestHeaders', () => sendable(rewriteRequestHeaders(request, headers)))
}
