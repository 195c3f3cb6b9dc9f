import type { FastifyRequest } from 'fastify'

/** A query parameter's value: undefined when absent, an array when repeated. */
export function queryValue (request: FastifyRequest, name: string | undefined): string | string[] | undefined {
  return name === undefined ? undefined : (request.query as Record<string, string | string[] | undefined>)[name]
}

/**
 * The name of one raw `name=value` pair, decoded the way Fastify's query parser decodes it (`+` is
 * a space, then percent-decoding; an escape that does not decode stays as it came), so that
 * `access%5Ftoken` is recognised as the `access_token` that `request.query` will show.
 */
export function decodedName (pair: string): string {
  const name = pair.split('=', 1)[0].replace(/\+/g, ' ')
  try {
    return decodeURIComponent(name)
  } catch {
    return name
  }
}
