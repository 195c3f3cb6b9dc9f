import type { FastifyRequest } from 'fastify'
import { decodedName } from './query'

/** The URL with the value of every query parameter whose decoded name is `name` replaced by `[redacted]`. */
function redactQuery (url: string, name: string): string {
  const queryAt = url.indexOf('?')
  if (queryAt === -1) return url
  const pairs = url.slice(queryAt + 1).split('&').map((pair) => decodedName(pair) === name ? `${pair.split('=', 1)[0]}=[redacted]` : pair)
  return `${url.slice(0, queryAt + 1)}${pairs.join('&')}`
}

/**
 * Fastify's request log serializer with the `tokenQuery` parameter's value replaced by
 * `[redacted]`, so a token in the URL never reaches a log line — however its name is encoded
 * (`access%5Ftoken` is the same parameter to Fastify's query parser, so it is to this one too).
 */
export function redactingRequestSerializer (tokenQuery: string): (request: FastifyRequest) => Record<string, unknown> {
  return (request) => ({
    method: request.method,
    url: redactQuery(request.url, tokenQuery),
    version: request.headers['accept-version'],
    host: request.host,
    remoteAddress: request.ip,
    remotePort: request.socket.remotePort
  })
}
