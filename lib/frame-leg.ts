import { Socket } from 'node:net'
import type WebSocket from 'ws'
import { MAX_CONTROL_PAYLOAD, MAX_HEADER_SIZE, headerSize } from './frames'
import type { LegName, LegState, PlannedClose, Traffic } from './relay'
import type { FrameRelay } from './frame-relay'

/*
 * One leg of the passthrough engine: its raw socket, taken over from ws, and the state of its
 * frame parser and of its close.
 */

/** What the parser of a leg is reading. */
export const HEADER = 0
export const DATA = 1
export const CONTROL = 2
/** After a close frame or a protocol violation: whatever else comes is dropped. */
export const DISCARD = 3

/** Where a control frame's payload is gathered in `FrameLeg#scratch`, after the header's room. */
export const CONTROL_AT = MAX_HEADER_SIZE

/** The listeners ws 8.23's `WebSocket#setSocket` puts on the socket, by event (see `detach`). */
const WS_SOCKET_LISTENERS: ReadonlyArray<[string, string]> = [
  ['data', 'socketOnData'], ['end', 'socketOnEnd'], ['close', 'socketOnClose'], ['error', 'socketOnError']
]

/** The ws internals this engine reads (ws 8.23); `canAdopt` checks them before anything relies on them. */
interface WsInternals {
  _socket?: unknown
  _receiver?: { _maxPayload?: number, _bufferedBytes?: number, _state?: number }
}

/** One side of the relay: its raw socket, the state of its frame parser and of its close. */
export class FrameLeg implements LegState {
  readonly traffic: Traffic = { frames: 0, bytes: 0 }
  code: number | undefined
  other!: FrameLeg
  /** Frames from clients are masked; those from the backend must not be. */
  readonly fromClient: boolean

  state = HEADER
  private buffer: Buffer | undefined
  /** Bytes of a header split across reads (`headLength` of them so far). */
  headLength = 0
  opcode = 0
  fin = false
  /** Payload bytes of the current frame still to come. */
  left = 0
  /** Whether the current data frame goes on to the other leg (not when that one is closing). */
  forwarding = false
  /** A fragmented data message is in progress. */
  inMessage = false
  /** The current message is dropped by the rate limit (`onExceeded: 'drop'`), all its frames. */
  dropping = false
  messageBytes = 0
  /** Bytes of the current control frame's payload gathered so far, at `scratch[CONTROL_AT]`. */
  controlLength = 0

  /** A close frame to this leg is queued or written. */
  closing = false
  closeWritten = false
  closeReceived = false
  /** The close code we answered a protocol violation with. */
  violation: number | undefined
  /** The other leg has been told how this one ended. */
  mirrored = false
  closed = false
  planned: PlannedClose | undefined
  closeTimer: NodeJS.Timeout | undefined
  alive = true
  paused = 0
  /** Control frames waiting for the frame being written to this leg to end. */
  pending: Buffer[] | undefined

  constructor (readonly relay: FrameRelay, readonly name: LegName, readonly socket: Socket, readonly maxPayload: number) {
    this.fromClient = name === 'client'
  }

  /**
   * Room for a header split across reads (from 0), a control frame's mask key (clients', at 2..5)
   * and its payload (from `CONTROL_AT`). Made the first time it is needed: an idle leg has none.
   */
  get scratch (): Buffer {
    this.buffer ??= Buffer.allocUnsafe(MAX_HEADER_SIZE + MAX_CONTROL_PAYLOAD)
    return this.buffer
  }
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

/** Copies header bytes into `leg.scratch` until it is complete or `chunk` ends; returns the new position. */
export function gather (leg: FrameLeg, chunk: Buffer, pos: number): number {
  const head = leg.scratch
  while (pos < chunk.length) {
    const need = leg.headLength < 2 ? 2 : headerSize(head[1])
    if (leg.headLength === need) break
    const n = Math.min(need - leg.headLength, chunk.length - pos)
    chunk.copy(head, leg.headLength, pos, pos + n)
    leg.headLength += n
    pos += n
  }
  return pos
}

export function socketOf (ws: WebSocket): Socket {
  return (ws as unknown as WsInternals)._socket as Socket
}

/** The gateway's limit, or the lower one ws was given for this leg (e.g. a backend's `maxPayload`). */
export function limitOf (ws: WebSocket, maxPayload: number): number {
  const own = (ws as unknown as WsInternals)._receiver?._maxPayload ?? 0
  return own > 0 ? Math.min(own, maxPayload) : maxPayload
}
