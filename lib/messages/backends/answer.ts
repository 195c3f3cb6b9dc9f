import type { FastifyBaseLogger } from 'fastify'
import { BackendErrorError, BackendRejectedError, BadGatewayError } from '../../errors'
import { withDetails } from '../envelope'
import type { BackendReply } from './types'

/** Longest piece of a backend's failure body that goes to the log. */
const LOGGED_BODY = 256

/**
 * Turns a backend's status and body (HTTP, or a queue worker's reply) into the answer: 2xx is a
 * reply; 4xx is `BACKEND_REJECTED` with the backend's status and its body as `data` (written for
 * clients); 5xx is `BACKEND_ERROR` 502 and anything else `BAD_GATEWAY` 502, their bodies logged
 * (cut short), never forwarded.
 */
export function answerOf (status: number, dataJson: string, log: FastifyBaseLogger): BackendReply {
  if (status >= 200 && status < 300) return { status, data: dataJson }
  if (status >= 400 && status < 500) {
    throw withDetails(new BackendRejectedError(), { statusCode: status, data: JSON.parse(dataJson) })
  }
  log.warn({ status, body: dataJson.slice(0, LOGGED_BODY) }, 'ws gateway backend failed a message')
  throw status >= 500 && status < 600 ? new BackendErrorError() : new BadGatewayError()
}
