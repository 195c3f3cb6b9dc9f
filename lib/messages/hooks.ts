import type { FastifyRequest } from 'fastify'
import type { Duplex } from 'node:stream'
import { BackendRefusedError, BadGatewayError, ClientGoneError, GatewayTimeoutError } from '../errors'
import type { GatewayConnection, ResolvedHttpTarget } from '../options/message-types'
import { backendHeaders } from './backends/headers'
import { sendHttp, type HttpPools } from './backends/http'
import { RequestSignal } from './signal'

/** The route key the `connect` and `disconnect` hooks are sent with (`x-route-key`). */
export const CONNECT_KEY = '$connect'
export const DISCONNECT_KEY = '$disconnect'

/**
 * A POST to a lifecycle hook; resolves with its status, or rejects: with the reason `signal` was
 * aborted for (the client leaving, or the timeout: `TIMEOUT`), else `BAD_GATEWAY`.
 */
async function post (pools: HttpPools, target: ResolvedHttpTarget, connection: GatewayConnection, key: string, body: unknown, timeout: number, signal: RequestSignal): Promise<number> {
  const timer = setTimeout(() => signal.abort(new GatewayTimeoutError()), target.timeout ?? timeout)
  let status
  try {
    const headers = backendHeaders(target.headers, connection, key)
    headers['content-type'] = 'application/json'
    status = (await sendHttp(pools, target, { body: JSON.stringify(body), headers, signal, log: connection.request.log })).status
  } catch (err) {
    throw signal.aborted ? signal.reason : err
  } finally {
    clearTimeout(timer)
  }
  return status
}

/**
 * The `connect` hook, before the client's 101 (like `$connect`): a POST of the handshake's
 * identity — `{ connectionId, sub, user, ip }` and the identity headers. 2xx lets the client in;
 * a 4xx is passed on to it as its status (as a relay backend's refusal is); anything else is 502,
 * no answer within the hook's `timeout` (else `connectTimeout`) 504. It is aborted when the client
 * leaves meanwhile.
 */
export async function runConnectHook (pools: HttpPools, target: ResolvedHttpTarget, connection: GatewayConnection, request: FastifyRequest, client: Duplex, timeout: number): Promise<void> {
  const signal = new RequestSignal()
  const onGone = (): void => signal.abort(new ClientGoneError())
  // Node's HTTP server allows half-open sockets, so a client that leaves shows as 'end' first.
  client.once('end', onGone)
  client.once('close', onGone)
  try {
    const body = { connectionId: connection.id, sub: connection.sub ?? null, user: connection.user, ip: request.ip }
    const status = await post(pools, target, connection, CONNECT_KEY, body, timeout, signal)
    if (status >= 200 && status < 300) return
    request.log.warn({ status }, 'ws gateway connect hook refused the connection')
    if (status >= 400 && status < 500) throw Object.assign(new BackendRefusedError(status), { statusCode: status })
    throw new BadGatewayError()
  } finally {
    client.removeListener('end', onGone)
    client.removeListener('close', onGone)
  }
}

/**
 * The `disconnect` hook, after the client left (like `$disconnect`): a POST of `{ connectionId,
 * sub, code, durationMs }`. Best-effort: sent once, never retried; a failure is logged at warn.
 */
export async function runDisconnectHook (pools: HttpPools, target: ResolvedHttpTarget, connection: GatewayConnection, details: { code: number, durationMs: number }, timeout: number): Promise<void> {
  try {
    const body = { connectionId: connection.id, sub: connection.sub ?? null, code: details.code, durationMs: details.durationMs }
    const status = await post(pools, target, connection, DISCONNECT_KEY, body, timeout, new RequestSignal())
    if (status < 200 || status >= 300) connection.request.log.warn({ status }, 'ws gateway disconnect hook failed')
  } catch (err) {
    connection.request.log.warn({ err }, 'ws gateway disconnect hook failed')
  }
}
