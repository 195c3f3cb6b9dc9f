import type { FastifyRequest } from 'fastify'
import { CallbackFailedError } from './errors'

/**
 * Runs one of the app's callbacks (`authorize`, `resolveBackend`, an `allowedOrigins` function,
 * `rewriteRequestHeaders`, an `identityHeaders` function). Whatever it throws or rejects with is
 * the app's fault, not the client's: it is logged at error with the callback's name and answered
 * with `failure()` — a coded error without the callback's text (by default
 * `FST_WS_GATEWAY_CALLBACK_FAILED`, 500). Sync callbacks stay sync, async ones stay async.
 */
export function callApp<T> (request: FastifyRequest, name: string, run: () => T, failure: () => Error = () => new CallbackFailedError()): T {
  const fail = (err: unknown): never => {
    request.log.error({ err, callback: name }, `ws gateway ${name} failed`)
    throw failure()
  }
  let result: T
  try {
    result = run()
  } catch (err) {
    return fail(err)
  }
  return (result instanceof Promise ? result.catch(fail) as T : result)
}
