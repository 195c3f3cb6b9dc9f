import { Pool } from 'undici'
import { BackendErrorError, BadGatewayError } from '../../errors'
import type { ResolvedHttpTarget } from '../../options/message-types'
import { asJsonText } from '../envelope'
import { answerOf } from './answer'
import { backendHeaders } from './headers'
import type { Backend, BackendReply, BackendRequest } from './types'

const JSON_TYPE = /^application\/([a-z0-9.+-]*\+)?json\s*(;|$)/i

/**
 * The undici pools of one registration: one per backend origin (and TLS settings), shared by
 * every route and connection that calls it, so connections are kept alive and reused. A response
 * body over `maxResponseSize` (the gateway's `maxPayload`) is refused by undici itself.
 */
export class HttpPools {
  private readonly pools = new Map<string | ResolvedHttpTarget, Pool>()

  constructor (private readonly maxResponseSize: number) {}

  for (target: ResolvedHttpTarget): Pool {
    const key = Object.keys(target.tls).length === 0 ? target.url.origin : target
    let pool = this.pools.get(key)
    if (pool === undefined) {
      pool = new Pool(target.url.origin, { connect: { ...target.tls }, maxResponseSize: this.maxResponseSize })
      this.pools.set(key, pool)
    }
    return pool
  }

  async close (): Promise<void> {
    await Promise.all([...this.pools.values()].map(async (pool) => await pool.destroy()))
    this.pools.clear()
  }
}

/** One HTTP exchange: what to send, and the request's abort signal and logger. */
export type HttpCall = Pick<BackendRequest, 'body' | 'signal' | 'log'> & {
  /** The request's headers, `content-type` included. */
  headers: Record<string, string>
}

/** Why a request failed, as the client is told; the cause is logged at warn. */
function failed (err: unknown, call: HttpCall): Error {
  if ((err as { code?: unknown }).code === 'UND_ERR_RES_EXCEEDED_MAX_SIZE') {
    call.log.warn('ws gateway backend answer over maxPayload')
    return new BackendErrorError()
  }
  call.log.warn({ err }, 'ws gateway backend unreachable')
  return new BadGatewayError()
}

/**
 * Sends one request to `target` and reads its answer, the body as JSON text (a JSON body as it
 * came, any other as a string; empty as null). Unreachable, refused, TLS failures and broken
 * answers are `BAD_GATEWAY`; an abort is rethrown as it is.
 */
export async function sendHttp (pools: HttpPools, target: ResolvedHttpTarget, call: HttpCall): Promise<{ status: number, data: string }> {
  const { body, headers, signal } = call
  try {
    const response = await pools.for(target).request({ path: target.path, method: target.method, headers, body, signal })
    const text = await response.body.text()
    const type = response.headers['content-type']
    const data = typeof type === 'string' && JSON_TYPE.test(type) ? asJsonText(text) : text === '' ? 'null' : JSON.stringify(text)
    return { status: response.statusCode, data }
  } catch (err) {
    // An abort is the pipeline's own doing (timeout, client gone): it has answered already.
    if (signal.aborted) throw err
    throw failed(err, call)
  }
}

/**
 * An HTTP route: the message is sent as a JSON body with the identity headers (see
 * `backendHeaders`) and the answer mapped by `answerOf`. The request is aborted — the backend
 * sees its connection close — when the client leaves or the timeout passes.
 */
export function httpBackend (target: ResolvedHttpTarget, pools: HttpPools): Backend {
  return async (request): Promise<BackendReply> => {
    const headers = backendHeaders(target.headers, request.connection, request.key, request.correlationId)
    headers['content-type'] = 'application/json'
    return await sendHttp(pools, target, { body: request.body, headers, signal: request.signal, log: request.log })
      .then(({ status, data }) => answerOf(status, data, request.log))
  }
}
