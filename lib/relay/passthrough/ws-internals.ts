import type { EventEmitter } from 'node:events'
import { Socket } from 'node:net'
import type WebSocket from 'ws'

/*
 * Every use of ws's private state, in one place, verified against ws 8.23.0. The passthrough
 * engine takes a WebSocket's raw socket over, which only works while ws leaves the socket as
 * described here; the ws engine turns off ws's own answers to pings and adds the reason to ws's
 * 1009. `canAdopt` checks what the takeover relies on, on every connection, before relying on it.
 * A ws release that changes any of it fails `test/ws-internals.test.ts` (run against the newest
 * ws 8.x too, by `test/ws-latest.test.ts`).
 */

/** The ws internals read or written here. */
interface WsInternals {
  _socket?: unknown
  _receiver?: EventEmitter & { _maxPayload?: number, _bufferedBytes?: number, _state?: number }
  _autoPong?: boolean
  setSocket?: (socket: Socket, head: Buffer, options: object) => void
}

/** What ws's `WebSocket#setSocket` leaves on a socket: its listeners, and a link back to the WebSocket. */
interface Footprint {
  readonly listeners: ReadonlyArray<readonly [event: string | symbol, listener: unknown]>
  readonly link: symbol
}

function internalsOf (ws: WebSocket): WsInternals {
  return ws as unknown as WsInternals
}

/**
 * Learns what `setSocket` leaves on a socket by calling it on a socket of its own, with a
 * WebSocket made by the same class. The listeners are ws's module-level functions, shared by every
 * WebSocket of that class, so they are recognised by identity — not by their names, which a
 * minifier renames. Null when ws no longer works this way.
 */
function probe (WebSocketClass: new (...args: unknown[]) => WebSocket): Footprint | null {
  try {
    const socket = new Socket()
    const before = new Map(socket.eventNames().map((event) => [event, socket.listeners(event)]))
    const ws = new WebSocketClass(null, undefined, {})
    internalsOf(ws).setSocket?.(socket, Buffer.alloc(0), {})
    const listeners = socket.eventNames().flatMap((event) => socket.listeners(event)
      .filter((listener) => !(before.get(event)?.includes(listener) ?? false))
      .map((listener) => [event, listener] as const))
    const link = Object.getOwnPropertySymbols(socket).find((symbol) => (socket as unknown as Record<symbol, unknown>)[symbol] === ws)
    return listeners.length > 0 && link !== undefined ? { listeners, link } : null
  } catch {
    return null
  }
}

/** The footprint of each WebSocket class met (an app may load more than one copy of ws). */
const footprints = new WeakMap<object, Footprint | null>()

function footprintOf (ws: WebSocket): Footprint | null {
  const WebSocketClass = ws.constructor as new (...args: unknown[]) => WebSocket
  if (!footprints.has(WebSocketClass)) footprints.set(WebSocketClass, probe(WebSocketClass))
  return footprints.get(WebSocketClass) as Footprint | null
}

/**
 * Whether both WebSockets can be taken over: each sits on a net.Socket (not a stream, as with
 * `injectWS`), carries each of ws's listeners exactly once and its link, and ws has not read a
 * byte of it yet. When ws's internals ever change, the gateway relays with the ws engine rather
 * than relaying a socket ws also reads (and says so: see `startRelay`).
 */
export function canAdopt (...sockets: WebSocket[]): boolean {
  return sockets.every((ws) => {
    const { _socket: socket, _receiver: receiver } = internalsOf(ws)
    if (!(socket instanceof Socket) || receiver?._bufferedBytes !== 0 || receiver._state !== 0) return false
    const footprint = footprintOf(ws)
    return footprint !== null && (socket as unknown as Record<symbol, unknown>)[footprint.link] === ws &&
      footprint.listeners.every(([event, listener]) => socket.listeners(event).filter((fn) => fn === listener).length === 1)
  })
}

/**
 * Takes a WebSocket's socket away from ws (after `canAdopt`): ws's listeners come off, so that ws
 * never reads, closes or emits again, and so does its link to the WebSocket, so that the
 * WebSocket (its Receiver and Sender with it) and, on the client leg, the upgrade's HTTP request
 * and response can be collected: an idle connection then holds little more than its two sockets.
 */
export function detach (ws: WebSocket): void {
  const socket = socketOf(ws)
  const { listeners, link } = footprintOf(ws) as Footprint
  for (const [event, listener] of listeners) socket.removeListener(event, listener as (...args: unknown[]) => void)
  // Cleared, not deleted: deleting a property turns the socket into a slow, hash-table object
  // (about 1.5 KiB more per socket).
  ;(socket as unknown as Record<symbol, unknown>)[link] = undefined
  ;(socket as unknown as { _httpMessage: unknown })._httpMessage = null
}

export function socketOf (ws: WebSocket): Socket {
  return internalsOf(ws)._socket as Socket
}

/**
 * Sets the largest message ws's Receiver takes on this WebSocket, whatever its server was created
 * with: the gateway's `maxPayload` then holds on its own connections (ws answers 1009 past it)
 * while the shared server keeps the app's setting for the app's routes. Nothing was read yet (the
 * route runs inside ws's upgrade callback), so the limit holds from the first byte.
 */
export function capMaxPayload (ws: WebSocket, maxPayload: number): void {
  (internalsOf(ws) as Required<WsInternals>)._receiver._maxPayload = maxPayload
}

/**
 * Stops ws from answering this WebSocket's pings (its `autoPong`, which the app's WebSocket server
 * may have on), so that the relay answers them under its own rules.
 *
 * @example
 * ```ts
 * answerPingsYourself(clientWs)
 * clientWs.on('ping', (data) => clientWs.pong(data))
 * ```
 */
export function answerPingsYourself (ws: WebSocket): void {
  internalsOf(ws)._autoPong = false
}

/**
 * Calls `listener` when ws refuses a message over this leg's `maxPayload`, before ws closes the
 * leg itself (with a bare 1009): a close sent from the listener is the one that goes out.
 *
 * @example
 * ```ts
 * onFrameTooBig(ws, () => ws.close(1009, 'message too big'))
 * ```
 */
export function onFrameTooBig (ws: WebSocket, listener: () => void): void {
  internalsOf(ws)._receiver?.prependListener('error', (err: { code?: string }) => {
    if (err.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH') listener()
  })
}
