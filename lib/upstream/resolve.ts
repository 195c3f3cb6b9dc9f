import type { FastifyRequest } from 'fastify'
import { BadGatewayError, UnknownBackendError } from '../errors'
import { resolveBackendConfig } from '../options/backend'
import type { ResolvedBackend, ResolvedOptions } from '../options/types'

/**
 * Finds the backend for an ID: the static map first, then `resolveBackend`. A resolver that
 * throws or returns a malformed entry is the app's fault, not the client's: it is logged and
 * answered with 502, without its message.
 */
export async function findBackend (request: FastifyRequest, id: string, opts: ResolvedOptions): Promise<ResolvedBackend> {
  const known = opts.backends.get(id)
  if (known !== undefined) return known
  if (opts.resolveBackend === undefined) throw new UnknownBackendError(id)
  let resolved
  try {
    const option = await opts.resolveBackend(id, request)
    if (option === undefined) throw new UnknownBackendError(id)
    resolved = resolveBackendConfig(id, option, `resolveBackend("${id}")`, opts.maxPayload)
  } catch (err) {
    if (err instanceof UnknownBackendError) throw err
    request.log.error({ err, backendId: id }, 'ws gateway resolveBackend failed')
    throw new BadGatewayError()
  }
  return resolved
}
