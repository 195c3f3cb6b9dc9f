import type { FastifyRequest } from 'fastify'

/** A query parameter's value: undefined when absent, an array when repeated. */
export function queryValue (request: FastifyRequest, name: string | undefined): string | string[] | undefined {
  return name === undefined ? undefined : (request.query as Record<string, string | string[] | undefined>)[name]
}
