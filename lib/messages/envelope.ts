/*
 * The frames the gateway sends in message mode, one JSON object each (README, "Replies and
 * errors"). `data` arrives here already serialized, so a backend's JSON body is spliced in as it
 * came rather than parsed and written out again.
 */

/** An error as an error frame carries it: an `@fastify/error` code, a status and a safe message. */
export interface MessageFailure {
  code: string
  statusCode: number
  message: string
  /** Seconds before trying again (rate limit, open circuit). */
  retryAfter?: number
  /** The backend's body, for a 4xx the app wrote for clients. */
  data?: unknown
}

/** Copies `details` onto a coded error (a status passed through, `retryAfter`, `data`). */
export function withDetails<E extends Error> (err: E, details: Partial<MessageFailure>): E & MessageFailure {
  return Object.assign(err, details) as E & MessageFailure
}

/** `{"type":"reply","id":…,"route":…,"status":…,"data":…}` with `data` as JSON text. */
export function replyFrame (id: unknown, route: string, status: number, dataJson: string): string {
  return `{"type":"reply","id":${JSON.stringify(id ?? null)},"route":${JSON.stringify(route)},"status":${status},"data":${dataJson}}`
}

/** `{"type":"error","id":…,"route":…,"code":…,"status":…,"message":…}`, plus `retryAfter` / `data` when set. */
export function errorFrame (id: unknown, route: string | null, err: MessageFailure): string {
  return JSON.stringify({
    type: 'error',
    id: id ?? null,
    route,
    code: err.code,
    status: err.statusCode,
    message: err.message,
    ...(err.retryAfter === undefined ? {} : { retryAfter: err.retryAfter }),
    ...(err.data === undefined ? {} : { data: err.data })
  })
}

/** `{"type":"message","route":…,"data":…}`: something a WebSocket route's upstream sent. */
export function pushFrame (route: string, dataJson: string): string {
  return `{"type":"message","route":${JSON.stringify(route)},"data":${dataJson}}`
}

/** A text as a JSON value: the value it spells when it is JSON, else the text as a JSON string. */
export function asJsonText (text: string): string {
  const trimmed = text.trim()
  if (trimmed === '') return 'null'
  try {
    JSON.parse(trimmed)
    return trimmed
  } catch {
    return JSON.stringify(text)
  }
}
