import type { ResolvedQueueTarget } from '../../options/message-types'
import type { QueueClient } from '../queue/client'
import { answerOf } from './answer'
import type { Backend, BackendReply } from './types'

/**
 * A queue route: the request is appended to the route's stream for a worker on any instance, and
 * the worker's reply (read from this instance's inbox) is mapped like an HTTP answer.
 */
export function queueBackend (target: ResolvedQueueTarget, client: () => QueueClient): Backend {
  return async (request): Promise<BackendReply> => {
    const { status, data } = await client().send(target, request)
    return answerOf(status, data, request.log)
  }
}
