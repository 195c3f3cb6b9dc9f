/** Message-mode counters of one registration (in `fastify.wsGateway.stats()` as `messages`). */
export interface MessageStats {
  /** Messages taken from clients (each answered by a reply, an error frame or, for a WebSocket route, nothing). */
  requests: number
  /** Reply frames sent. */
  replies: number
  /** Error frames sent, by code. */
  errors: Record<string, number>
  /** Requests whose client left before the answer: aborted, not answered, never a backend failure. */
  clientGone: number
  /** Queue replies that came after their request had timed out or its client had left; dropped. */
  lateReplies: number
  /** Messages WebSocket routes' upstreams sent to clients. */
  pushed: number
}

/** A zeroed `MessageStats`. */
export function emptyMessageStats (): MessageStats {
  return { requests: 0, replies: 0, errors: {}, clientGone: 0, lateReplies: 0, pushed: 0 }
}

/** Adds `from` into `into`. */
export function addMessageStats (into: MessageStats, from: MessageStats): void {
  into.requests += from.requests
  into.replies += from.replies
  into.clientGone += from.clientGone
  into.lateReplies += from.lateReplies
  into.pushed += from.pushed
  for (const [code, count] of Object.entries(from.errors)) into.errors[code] = (into.errors[code] ?? 0) + count
}
