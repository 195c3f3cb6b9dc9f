import type { FastifyRequest } from 'fastify'
import { BackendRefusedError, BadGatewayError, GatewayTimeoutError } from '../errors'
import type { ResolvedBackend, ResolvedOptions } from '../options/types'
import type { Endpoint, Pool } from './pool'
import type { Attempt, Upstream } from './attempt'
import { openUpstream } from './open'

/** A backend as the failover sees it: its config, its pool, and whether discovery has answered. */
export interface PoolBackend {
  readonly config: ResolvedBackend
  readonly pool: Pool
  /** Settles once the endpoints are known (the first DNS answer); undefined from then on, and for listed URLs. */
  readonly ready: Promise<void> | undefined
}

/** An open backend connection and the endpoint it holds; `release` it when the connection ends. */
export interface PooledUpstream extends Upstream {
  readonly endpoint: Endpoint
  release: () => void
}

/** Resolves after `ms`, or rejects with 504 if `promise` has not settled by then. */
async function within<T> (promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => { timer = setTimeout(() => reject(new GatewayTimeoutError()), ms) })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * Opens the backend through the first endpoint of its pool that accepts, all within
 * `connectTimeout`: an endpoint that is unreachable, answers 3xx/5xx or does not answer in time is
 * marked as failed (see `Health`) and the next one is tried; each attempt gets an equal share of
 * the time left. A 4xx is the backend's answer and goes to the client as it is (no retry). When no
 * endpoint accepted, the client gets 504 if the last attempt timed out, else 502.
 */
export async function connectBackend (request: FastifyRequest, opts: ResolvedOptions, backend: PoolBackend, client: Pick<Attempt, 'client' | 'offered' | 'connectionId' | 'raw'>, sub: string | undefined): Promise<PooledUpstream> {
  const deadline = Date.now() + opts.connectTimeout
  // Waited for only until discovery has answered: the race and its timer are not free per handshake.
  if (backend.ready !== undefined) await within(backend.ready, opts.connectTimeout)
  const { pool } = backend
  const candidates = pool.candidates(sub)
  if (candidates.length === 0) {
    request.log.warn({ backendId: backend.config.id }, 'ws gateway backend has no endpoint')
    throw new BadGatewayError()
  }
  let timedOut = false
  for (const [i, endpoint] of candidates.entries()) {
    let released = false
    const release = (): void => {
      if (!released) pool.release(endpoint)
      released = true
    }
    pool.acquire(endpoint)
    try {
      const upstream = await openUpstream(request, opts, {
        backend: backend.config,
        endpoint: endpoint.target,
        // A late timer may leave nothing for the last attempts: they fail at once, as 504s.
        timeout: Math.max(1, Math.ceil((deadline - Date.now()) / (candidates.length - i))),
        ...client,
        onDiscard: release
      })
      endpoint.health.success()
      return { ...upstream, endpoint, release }
    } catch (err) {
      release()
      if (err instanceof BackendRefusedError) {
        endpoint.health.success()
        throw err
      }
      // The client left, or the app's own hook (rewriteRequestHeaders) threw: not the endpoint's doing.
      if (!(err instanceof BadGatewayError) && !(err instanceof GatewayTimeoutError)) throw err
      endpoint.health.failure()
      timedOut = err instanceof GatewayTimeoutError
    }
  }
  throw timedOut ? new GatewayTimeoutError() : new BadGatewayError()
}
