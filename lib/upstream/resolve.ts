import type { FastifyRequest } from 'fastify'
import { callApp } from '../callbacks'
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
  const { resolveBackend } = opts
  if (resolveBackend === undefined) throw new UnknownBackendError(id)
  const resolved = await callApp(request, 'resolveBackend', async () => {
    const option = await resolveBackend(id, request)
    return option === undefined ? undefined : resolveBackendConfig(id, option, `resolveBackend("${id}")`, opts.maxPayload)
  }, () => new BadGatewayError())
  if (resolved === undefined) throw new UnknownBackendError(id)
  return resolved
}
