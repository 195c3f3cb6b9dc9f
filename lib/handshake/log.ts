import type { FastifyRequest, RegisterOptions } from 'fastify'
import type { ResolvedOptions } from '../options/types'
import { decodedName } from './query'

type RequestSerializer = (request: FastifyRequest) => unknown

/** Fastify's own request serializer (an `injectWS` request has no socket). */
const defaultRequestSerializer: RequestSerializer = (request) => ({
  method: request.method,
  url: request.url,
  version: request.headers['accept-version'],
  host: request.host,
  remoteAddress: request.ip,
  remotePort: request.socket?.remotePort
})

/** The URL with the value of every query parameter whose decoded name is `name` replaced by `[redacted]`. */
function redactQuery (url: string, name: string): string {
  const queryAt = url.indexOf('?')
  if (queryAt === -1) return url
  const pairs = url.slice(queryAt + 1).split('&').map((pair) => decodedName(pair) === name ? `${pair.split('=', 1)[0]}=[redacted]` : pair)
  return `${url.slice(0, queryAt + 1)}${pairs.join('&')}`
}

/** `value` with the `name` query parameter redacted from every string, at any depth of its arrays and plain objects. */
function redacted (value: unknown, name: string): unknown {
  if (typeof value === 'string') return redactQuery(value, name)
  if (Array.isArray(value)) return value.map((v) => redacted(v, name))
  if (typeof value !== 'object' || value === null || Object.getPrototypeOf(value) !== Object.prototype) return value
  return Object.fromEntries(Object.entries(value).map(([key, v]) => [key, redacted(v, name)]))
}

/**
 * The log serializers of the gateway's route, on top of the register options' `logSerializers`
 * (which Fastify applies to the gateway's context). With `tokenQuery`, the request serializer —
 * the app's, else Fastify's — has the token parameter's value replaced by `[redacted]` wherever it
 * shows in what it returns, so a token in the URL never reaches a log line — however its name is
 * encoded (`access%5Ftoken` is the same parameter to Fastify's query parser, so it is here too).
 */
export function routeSerializers ({ tokenQuery, logSerializers }: ResolvedOptions): RegisterOptions['logSerializers'] {
  if (tokenQuery === undefined) return undefined
  const serialize = (logSerializers?.req ?? defaultRequestSerializer) as RequestSerializer
  // Fastify types serializers as returning strings; they return what pino should log.
  return { req: (request: FastifyRequest) => redacted(serialize(request), tokenQuery) as string }
}
