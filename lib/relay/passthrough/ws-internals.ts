import { Socket } from 'node:net'
import type WebSocket from 'ws'

/*
 * Every use of ws's private state, in one place, verified against ws 8.23: the passthrough engine
 * takes a WebSocket's raw socket over, which only works while ws puts the listeners and fields
 * named here. `canAdopt` checks them on every connection before anything relies on them.
 */

/** The listeners ws 8.23's `WebSocket#setSocket` puts on the socket, by event (see `detach`). */
const WS_SOCKET_LISTENERS: ReadonlyArray<[string, string]> = [
  ['data', 'socketOnData'], ['end', 'socketOnEnd'], ['close', 'socketOnClose'], ['error', 'socketOnError']
]

/** The ws internals this engine reads (ws 8.23); `canAdopt` checks them before anything relies on them. */
interface WsInternals {
  _socket?: unknown
  _receiver?: { _maxPayload?: number, _bufferedBytes?: number, _state?: number }
}

/**
 * Whether both WebSockets can be taken over: each sits on a net.Socket (not a stream, as with
 * `injectWS`), carries exactly the listeners ws 8.23 puts there, and ws has not read a byte of
 * it yet. When ws's internals ever change, the gateway falls back to the ws engine rather than
 * relaying a socket ws also reads.
 */
export function canAdopt (...sockets: WebSocket[]): boolean {
  return sockets.every((ws) => {
    const { _socket: socket, _receiver: receiver } = ws as unknown as WsInternals
    if (!(socket instanceof Socket) || receiver?._bufferedBytes !== 0 || receiver._state !== 0) return false
    return WS_SOCKET_LISTENERS.every(([event, name]) => socket.listeners(event).filter((fn) => fn.name === name).length === 1)
  })
}

/**
 * Removes ws's own listeners from a socket, so that ws never reads, closes or emits again, and
 * its link to the WebSocket, so that the WebSocket (its Receiver and Sender with it) and, on the
 * client leg, the upgrade's HTTP request and response can be collected: an idle connection then
 * holds little more than its two sockets.
 */
export function detach (socket: Socket): void {
  for (const [event, name] of WS_SOCKET_LISTENERS) {
    for (const fn of socket.listeners(event)) {
      if (fn.name === name) socket.removeListener(event, fn as (...args: unknown[]) => void)
    }
  }
  const link = Object.getOwnPropertySymbols(socket).find((symbol) => symbol.description === 'websocket')
  // Cleared, not deleted: deleting a property turns the socket into a slow, hash-table object
  // (about 1.5 KiB more per socket).
  if (link !== undefined) (socket as unknown as Record<symbol, unknown>)[link] = undefined
  ;(socket as unknown as { _httpMessage: unknown })._httpMessage = null
}

export function socketOf (ws: WebSocket): Socket {
  return (ws as unknown as WsInternals)._socket as Socket
}

/**
 * Sets the largest message ws's Receiver takes on this WebSocket, whatever its server was created
 * with: the gateway's `maxPayload` then holds on its own connections (ws answers 1009 past it)
 * while the shared server keeps the app's setting for the app's routes. Nothing was read yet (the
 * route runs inside ws's upgrade callback), so the limit holds from the first byte.
 */
export function capMaxPayload (ws: WebSocket, maxPayload: number): void {
  (ws as unknown as Required<WsInternals>)._receiver._maxPayload = maxPayload
}

/** The gateway's limit, or the lower one ws was given for this leg (e.g. a backend's `maxPayload`). */
export function limitOf (ws: WebSocket, maxPayload: number): number {
  const own = (ws as unknown as WsInternals)._receiver?._maxPayload ?? 0
  return own > 0 ? Math.min(own, maxPayload) : maxPayload
}
