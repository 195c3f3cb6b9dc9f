import type { FastifyRequest } from 'fastify'
import type { ResolvedOptions } from '../options/types'
import type { Attempt, Upstream } from './attempt'
import { upstreamHeaders, upstreamUrl } from './headers'
import { openRaw } from './raw'
import { openWs } from './ws'

/**
 * Opens one backend endpoint before the client's upgrade is completed, so a refusal can still be
 * answered with an HTTP status: a 4xx from the backend is passed through (`BackendRefusedError`),
 * any other status, an invalid answer or an unreachable endpoint is 502, and no answer within the
 * attempt's timeout is 504. The failover (`failover.ts`) decides what to try next.
 *
 * Once open, the connection is paused: frames the backend sends at once wait until the relay
 * resumes it, so none are lost while the client's upgrade completes. Until the relay adopts it,
 * it is terminated if the client (its upgrade socket) goes away or the request ends in an error.
 */
export async function openUpstream (request: FastifyRequest, opts: ResolvedOptions, attempt: Attempt): Promise<Upstream> {
  const { backend, endpoint, offered } = attempt
  const headers = upstreamHeaders(request, backend, opts)
  if (offered.length > 0) headers['sec-websocket-protocol'] = offered.join(', ')
  // The gateway's own, after everything else: a client can never supply it.
  headers['x-connection-id'] = attempt.connectionId
  const sent = { url: upstreamUrl(request, endpoint.url, opts), headers, log: request.log.child({ backendId: backend.id, endpoint: endpoint.key }) }
  return attempt.raw ? await openRaw(attempt, sent) : await openWs(attempt, sent)
}
