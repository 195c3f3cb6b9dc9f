import type { Socket } from 'node:net'
import { MAX_CONTROL_PAYLOAD, MAX_HEADER_SIZE, headerSize } from './frames'
import type { LegName, LegState, PlannedClose, Traffic } from '../types'

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
/** Where the payload of a pong waiting to be written is kept in `FrameLeg#scratch`. */
export const PONG_AT = CONTROL_AT + MAX_CONTROL_PAYLOAD

/** Where a leg's socket events go: the engine that owns the leg (`FrameRelay`). */
export interface LegEvents {
  data: (leg: FrameLeg, chunk: Buffer) => void
  end: (leg: FrameLeg) => void
  close: (leg: FrameLeg) => void
  drain: (leg: FrameLeg) => void
  error: (leg: FrameLeg, err: Error) => void
}

/**
 * One side of the relay: its raw socket and its state, in three sections, each written by one
 * part of the engine only — the reader (`FrameReader`), the writer (`FrameWriter`) and the
 * closer (`FrameCloser`). The others may read it.
 */
export class FrameLeg implements LegState {
  other!: FrameLeg
  /** Frames from clients are masked; those from the backend must not be. */
  readonly fromClient: boolean

  // The reader's: what the parser is reading, and what came in.
  readonly traffic: Traffic = { frames: 0, bytes: 0 }
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
  /** Client legs: the current frame's old mask key ^ the new one it is forwarded with (see mask.ts). */
  maskDelta = 0
  /** Client legs: payload bytes of the current frame masked again so far. */
  maskOffset = 0
  /** A pong came back since the last heartbeat ping. */
  alive = true

  // The writer's: back-pressure, and control frames waiting for a frame boundary.
  /** This leg is not being read: the other one is over its `highWaterMark`. */
  paused = false
  /**
   * This leg's socket reads into one buffer it reuses (`net.connect({ onread })`'s way): the chunks
   * it hands the reader are only lent until the next read, so the writer copies what it cannot have
   * written at once (see `FrameWriter#forward`). Set once the leg carries bulk data (`borrowReads`,
   * in borrow.ts).
   */
  borrows = false
  /** A write of bytes lent by this leg is still in flight: this leg is not read until it ends. */
  lent = false
  /** Control frames waiting for the frame being written to this leg to end. */
  pending: Buffer[] | undefined
  /** Messages of the gateway's own (the registry API's) waiting for the message being written to this leg to end. */
  pushes: Buffer[] | undefined
  /**
   * A pong to the latest ping from this leg waits (for the one being written, or a frame
   * boundary): the length of its payload, kept at `scratch[PONG_AT]`.
   */
  pong: number | undefined
  /** A pong to this leg is being written (its write has not completed). */
  ponging = false
  /** Our close frame went out on this leg. */
  closeWritten = false

  // The closer's: how this leg's close goes.
  /** The close code this leg ended with (1005 none, 1006 abnormal), once closed. */
  code: number | undefined
  /** A close frame to this leg is queued or written. */
  closing = false
  closeReceived = false
  /** The close code we answered a protocol violation with. */
  violation: number | undefined
  /** The other leg has been told how this one ended. */
  mirrored = false
  closed = false
  /** A close the gateway decided on for this leg (a policy close), instead of mirroring. */
  planned: PlannedClose | undefined
  closeTimer: NodeJS.Timeout | undefined

  constructor (readonly events: LegEvents, readonly name: LegName, readonly socket: Socket, readonly maxPayload: number) {
    this.fromClient = name === 'client'
  }

  /**
   * Room for a header split across reads (from 0), a control frame's mask key (clients', at 2..5)
   * and its payload (from `CONTROL_AT`), and the payload of a pong waiting (from `PONG_AT`). Made
   * the first time it is needed: an idle leg has none.
   */
  get scratch (): Buffer {
    this.buffer ??= Buffer.allocUnsafe(PONG_AT + MAX_CONTROL_PAYLOAD)
    return this.buffer
  }
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
