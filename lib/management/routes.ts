import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import { AuthorizeFailedError, ConnectionGoneError, InvalidQueryError, ManagementForbiddenError, NoCredentialsError } from '../errors'
import type { ResolvedManagementApi } from '../options/types'
import type { ConnectionApi } from '../registry/types'

interface IdParams { id: string }
interface CloseQuery { code?: string, reason?: string }
interface ListQueryString { sub?: string, backendId?: string, path?: string, limit?: string, cursor?: string }

/** A query-string number, or undefined; anything else is a 400. */
function integerParam (value: string | undefined, name: string): number | undefined {
  if (value === undefined) return undefined
  if (!/^\d{1,9}$/.test(value)) throw new InvalidQueryError(`${name} must be an integer`)
  return Number(value)
}

/**
 * The REST surface over the connection registry, in a context of its own under `prefix`:
 * `POST /:id` sends the body as one message (`application/octet-stream` → binary, anything else
 * → text), `GET /:id` returns its ConnectionInfo, `DELETE /:id?code=&reason=` closes it, and
 * `GET /?sub=&backendId=&path=&limit=&cursor=` lists. Every request needs an `Authorization`
 * header (else 401) and the app's `authorize` (false → 403). Errors are the API's coded JSON
 * errors; 503 and 429 come with `Retry-After`.
 */
export function managementRoutes (api: ConnectionApi, settings: ResolvedManagementApi, retryAfter: number) {
  return async function routes (scope: FastifyInstance): Promise<void> {
    // The body is one message as it came: never parsed, whatever its type.
    scope.removeAllContentTypeParsers()
    scope.addContentTypeParser('*', { parseAs: 'buffer' }, (_request, body, done) => { done(null, body) })

    scope.addHook('onRequest', async (request: FastifyRequest) => {
      if (request.headers.authorization === undefined) throw new NoCredentialsError()
      let allowed: boolean
      try {
        allowed = await settings.authorize(request)
      } catch (err) {
        request.log.error({ err }, 'ws gateway management authorize failed')
        throw new AuthorizeFailedError()
      }
      if (allowed !== true) throw new ManagementForbiddenError()
    })

    scope.setErrorHandler(async (error: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
      // Coded errors (ours, Fastify's) say what the caller did or what is down; nothing else is shown.
      const coded = error.code?.startsWith('FST_') === true
      const status = coded ? error.statusCode as number : 500
      if (status === 503 || status === 429) reply.header('retry-after', String(retryAfter))
      if (status >= 500) request.log.warn({ err: error }, 'ws gateway management request failed')
      reply.code(status)
      return coded
        ? { statusCode: status, code: error.code, error: error.name, message: error.message }
        : { statusCode: 500, error: 'Internal Server Error', message: 'Internal Server Error' }
    })

    scope.post<{ Params: IdParams, Body: Buffer | undefined }>('/:id', async (request, reply) => {
      const body = request.body ?? Buffer.alloc(0)
      const binary = request.headers['content-type']?.split(';')[0].trim().toLowerCase() === 'application/octet-stream'
      await api.send(request.params.id, body, { binary })
      reply.code(204)
    })

    scope.get<{ Params: IdParams }>('/:id', async (request) => {
      const info = await api.get(request.params.id)
      if (info === undefined) throw new ConnectionGoneError()
      return info
    })

    scope.delete<{ Params: IdParams, Querystring: CloseQuery }>('/:id', async (request, reply) => {
      await api.close(request.params.id, integerParam(request.query.code, 'code'), request.query.reason)
      reply.code(204)
    })

    scope.get<{ Querystring: ListQueryString }>('/', async (request) => {
      const { sub, backendId, path, limit, cursor } = request.query
      return await api.list({ sub, backendId, path, limit: integerParam(limit, 'limit'), cursor })
    })
  }
}
