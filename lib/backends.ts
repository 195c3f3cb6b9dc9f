import type { FastifyRequest } from 'fastify'
import { queryValue } from './auth'
import { BadBackendIdError, BadGatewayError, NoBackendIdError, UnknownBackendError } from './errors'
import { BACKEND_ID_PATTERN, resolveBackendConfig, type ResolvedBackend, type ResolvedOptions } from './options'

/**
 * The backend ID the client asked for: the ID header, else the `idQuery` parameter when
 * configured. Node joins a repeated header into one value, so the raw header list is counted to
 * tell a duplicate from an odd value.
 */
export function backendIdOf (request: FastifyRequest, opts: ResolvedOptions): string {
  const { idHeader, idQuery } = opts
  const value = request.headers[idHeader] ?? queryValue(request, idQuery)
  if (value === undefined) throw new NoBackendIdError(idHeader)
  const raw = request.raw.rawHeaders
  let count = 0
  for (let i = 0; i < raw.length; i += 2) {
    if (raw[i].toLowerCase() === idHeader) count++
  }
  if (count > 1 || Array.isArray(value)) throw new BadBackendIdError('the ID is repeated')
  if (!BACKEND_ID_PATTERN.test(value)) {
    throw new BadBackendIdError('expected 1 to 64 of A-Z a-z 0-9 _ . -')
  }
  return value
}

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
