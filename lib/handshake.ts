import type { FastifyReply, FastifyRequest } from 'fastify'
import type { ResolvedBackend, ResolvedOptions, UpstreamHeaders } from './options'
import { BadHandshakeError, UpgradeRequiredError } from './errors'

const WEBSOCKET_KEY = /^[+/0-9A-Za-z]{22}==$/

/**
 * Headers never copied to the backend: hop-by-hop ones (RFC 9110 §7.6.1), the WebSocket
 * handshake's own (the upstream client makes its own key, version and extensions), the host, and
 * forwarding headers a client could forge (the gateway writes its own X-Forwarded-*).
 */
const NOT_FORWARDED = new Set([
  'connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection', 'te',
  'trailer', 'transfer-encoding', 'upgrade', 'http2-settings', 'host', 'content-length',
  'sec-websocket-key', 'sec-websocket-version', 'sec-websocket-extensions', 'sec-websocket-accept',
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

/** The subprotocols a client offered, in its order (RFC 6455 §4.1: a comma-separated list). */
export function offeredProtocols (request: FastifyRequest): string[] {
  const header = request.headers['sec-websocket-protocol']
  return header === undefined ? [] : header.split(',').map((p) => p.trim()).filter((p) => p !== '')
}

/** The backend URL with the client's query string appended to the backend's own. */
export function upstreamUrl (request: FastifyRequest, backend: ResolvedBackend): URL {
  const url = new URL(backend.url)
  const queryAt = request.url.indexOf('?')
  if (queryAt !== -1) {
    const query = request.url.slice(queryAt + 1)
    url.search = url.search === '' ? query : `${url.search.slice(1)}&${query}`
  }
  return url
}

/**
 * The handshake headers for the backend: the client's end-to-end headers, `X-Forwarded-*` from
 * what Fastify knows of the client (honouring its `trustProxy`), the backend's configured headers,
 * then the app's `rewriteRequestHeaders`.
 */
export function upstreamHeaders (request: FastifyRequest, backend: ResolvedBackend, opts: ResolvedOptions): UpstreamHeaders {
  const named = new Set((request.headers.connection ?? '').toLowerCase().split(',').map((t) => t.trim()))
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
