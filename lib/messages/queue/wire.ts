/*
 * The queue's wire format on Redis Streams (README, "Queue wire format"), shared by the gateway
 * and the worker helper so the two cannot drift. Every field is a string.
 *
 * Request, appended by the gateway to the route's stream (`XADD <stream> MAXLEN ~ <n> * …`):
 *   request     unique id of this request (echo it in the reply)
 *   replyTo     stream to append the reply to (the gateway instance's inbox)
 *   route       the route key the message asked for
 *   connection  the client connection's id (`x-connection-id`)
 *   sub         the token's subject, '' when none
 *   id          the message's correlation id as JSON ('null' when absent)
 *   message     the message, as JSON
 *   deadline    epoch milliseconds after which the gateway no longer waits
 *
 * Reply, appended by a worker to `replyTo` (`XADD <replyTo> MAXLEN ~ 10000 * …`):
 *   request     the request's id
 *   status      HTTP-style status: 2xx reply, 4xx rejected (data goes to the client), 5xx failed
 *   data        the answer, as JSON
 */

/** A request as a worker reads it. */
export interface QueueRequest {
  /** The request's id; the reply must carry it. */
  readonly request: string
  readonly replyTo: string
  readonly route: string
  readonly connectionId: string
  /** The token's subject, or undefined. */
  readonly sub: string | undefined
  /** The message's correlation id, or null. */
  readonly correlationId: string | number | null
  readonly message: unknown
  /** Epoch ms after which the gateway no longer waits for the reply. */
  readonly deadline: number
}

/** How long a worker lets an inbox grow when its gateway is gone (`MAXLEN ~`). */
export const INBOX_MAX_LENGTH = 10_000

/** The inbox of one gateway instance: `<prefix>:{<nodeId>}:replies` (the braces keep a Redis Cluster slot). */
export function inboxKey (prefix: string, nodeId: string): string {
  return `${prefix}:{${nodeId}}:replies`
}

/** The fields of a request entry, flattened for XADD. */
export function requestFields (request: Omit<QueueRequest, 'message' | 'correlationId'> & { message: string, correlationId: string | number | undefined }): string[] {
  return [
    'request', request.request,
    'replyTo', request.replyTo,
    'route', request.route,
    'connection', request.connectionId,
    'sub', request.sub ?? '',
    'id', JSON.stringify(request.correlationId ?? null),
    'message', request.message,
    'deadline', String(request.deadline)
  ]
}

/** An entry's flat `[field, value, …]` list as an object. */
export function fieldsOf (flat: string[]): Record<string, string | undefined> {
  const fields: Record<string, string | undefined> = {}
  for (let i = 0; i + 1 < flat.length; i += 2) fields[flat[i]] = flat[i + 1]
  return fields
}

/** A request entry as a worker sees it; throws on a malformed entry. */
export function parseRequest (flat: string[]): QueueRequest {
  const f = fieldsOf(flat)
  if (f.request === undefined || f.replyTo === undefined || f.message === undefined) throw new Error('not a gateway request')
  return {
    request: f.request,
    replyTo: f.replyTo,
    route: f.route ?? '',
    connectionId: f.connection ?? '',
    sub: f.sub === undefined || f.sub === '' ? undefined : f.sub,
    correlationId: JSON.parse(f.id ?? 'null'),
    message: JSON.parse(f.message),
    deadline: Number(f.deadline)
  }
}

/** The fields of a reply entry, flattened for XADD. */
export function replyFields (request: string, status: number, data: unknown): string[] {
  return ['request', request, 'status', String(status), 'data', JSON.stringify(data ?? null)]
}
