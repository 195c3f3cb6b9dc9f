import type { FastifyRequest } from 'fastify'
import { BadBackendIdError, NoBackendIdError } from '../errors'
import { BACKEND_ID_PATTERN } from '../options/defaults'
import type { ResolvedOptions } from '../options/types'
import { queryValue } from './query'

/**
 * The backend ID the client asked for: the ID header, else the `idQuery` parameter when
 * configured. Node joins a repeated header into one value, so the raw header list is counted to
 * tell a duplicate from an odd value (an `injectWS` request has none: its headers are an object).
 */
export function backendIdOf (request: FastifyRequest, opts: ResolvedOptions): string {
  const { idHeader, idQuery } = opts
  const value = request.headers[idHeader] ?? queryValue(request, idQuery)
  if (value === undefined) throw new NoBackendIdError(idHeader)
  const raw = request.raw.rawHeaders ?? []
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
