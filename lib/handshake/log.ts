import type { FastifyRequest } from 'fastify'

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
