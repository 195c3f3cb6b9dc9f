import type { RelayConnection } from '../connection'
import { CLIENT_PONG, CLOSE_FRAME_BYTE, EMPTY, OPCODE_PONG, controlFrame } from './frames'
import { DATA, PONG_AT, type FrameLeg } from './leg'

/**
 * The writing part of the passthrough engine: bytes out to a leg, back-pressure between the legs,
 * and the gateway's own control frames, which may only go out between frames.
 */
export class FrameWriter {
  constructor (private readonly connection: RelayConnection) {}

  /** Forwards `chunk[from, end)` to `to`; pauses the sender when `to` is backed up. */
  forward (to: FrameLeg, chunk: Buffer, from: number, end: number): void {
    const bytes = from === 0 && end === chunk.length ? chunk : chunk.subarray(from, end)
    if (to.other.borrows) this.writeLent(to, bytes)
    else this.write(to, bytes)
  }

  /**
   * Writes bytes lent by the other leg's reused read buffer. Behind bytes already queued they
   * would wait, so they are copied; otherwise they are written as they are, and when the kernel
   * did not take them all at once (the socket then still holds them: `writableLength`), the
   * lender is not read — its buffer not overwritten — until they are written.
   */
  private writeLent (to: FrameLeg, bytes: Buffer): void {
    const socket = to.socket
    if (socket.writableLength > 0) return this.write(to, Buffer.from(bytes))
    this.write(to, bytes)
    if (socket.writableLength === 0) return
    const lender = to.other
    lender.lent = true
    lender.socket.pause()
    socket.write(EMPTY, () => {
      lender.lent = false
      if (!lender.paused) lender.socket.resume()
    })
  }

  write (to: FrameLeg, bytes: Buffer): void {
    const socket = to.socket
    if (!socket.writable) return
    // Once `to` is closing, only the rest of a frame already begun goes out (see `closeLeg`).
    if ((!socket.write(bytes) || socket.writableLength > this.connection.settings.highWaterMark) && !to.closing) this.full(to)
  }

  /** `to` is over its limit: stop reading the other leg until `to` has written what it holds. */
  private full (to: FrameLeg): void {
    const leg = to.other
    if (!leg.paused) {
      leg.paused = true
      leg.socket.pause()
      // A client that leaves the backend paused for too long is closed (`slowConsumerTimeout`).
      if (!leg.fromClient) this.connection.clientBackedUp()
    }
    // 'drain' only comes after a write returned false; below the socket's own high-water mark
    // (a `highWaterMark` under 16 KiB), an empty write's callback says when the rest is written.
    if (!to.socket.writableNeedDrain) to.socket.write(EMPTY, () => this.drained(to))
  }

  /** `leg` has written all it held (or is gone, or closing): the other leg is read again. */
  drained (leg: FrameLeg): void {
    const other = leg.other
    if (!other.paused) return
    other.paused = false
    if (!other.fromClient) this.connection.clientCaughtUp()
    if (!other.lent) other.socket.resume()
  }

  /**
   * Writes a control frame to `leg`, or queues it while a data frame to `leg` is half written (a
   * control frame may come between the fragments of a message, never inside a frame). What can
   * wait here is bounded: a heartbeat ping (the next beat ends a leg that did not answer) and a
   * close frame; pongs have their own slot (`pong`).
   */
  sendControl (leg: FrameLeg, frame: Buffer): void {
    if (!halfWritten(leg)) return this.writeControl(leg, frame)
    if (leg.pending === undefined) leg.pending = []
    leg.pending.push(frame)
  }

  /**
   * Answers a ping from `leg` (its payload, read from `leg.scratch`). One pong is written at a
   * time; a ping that comes while it is, or while a data frame to `leg` is half written, replaces
   * the pong waiting, so only the latest ping is answered (RFC 6455 §5.5.3): a peer that pings
   * without reading holds at most two pongs of the gateway's memory, and costs one write per pong
   * written — not per ping, and without an allocation per ping.
   */
  pong (leg: FrameLeg, payload: Buffer): void {
    if (!leg.ponging && !halfWritten(leg)) return this.writePong(leg, payload)
    if (payload.length > 0) payload.copy(leg.scratch, PONG_AT)
    leg.pong = payload.length
  }

  private flushPong (leg: FrameLeg): void {
    const length = leg.pong
    if (length === undefined || leg.ponging || halfWritten(leg)) return
    leg.pong = undefined
    this.writePong(leg, length === 0 ? EMPTY : leg.scratch.subarray(PONG_AT, PONG_AT + length))
  }

  private writePong (leg: FrameLeg, payload: Buffer): void {
    // After our close frame, no pong.
    if (leg.closing || !leg.socket.writable) return
    leg.ponging = true
    const frame = leg.fromClient && payload.length === 0 ? CLIENT_PONG : controlFrame(OPCODE_PONG, payload, !leg.fromClient)
    leg.socket.write(frame, () => {
      leg.ponging = false
      this.flushPong(leg)
    })
  }

  /** A data frame to `leg` has ended: the pong and control frames that waited for it go out. */
  flushPending (leg: FrameLeg): void {
    this.flushPong(leg)
    const pending = leg.pending
    if (pending === undefined) return
    leg.pending = undefined
    for (const frame of pending) this.writeControl(leg, frame)
  }

  /**
   * Writes a whole message of the gateway's own to `leg`, or queues it while the other leg is in
   * the middle of a message to `leg`: a pushed message never lands inside a relayed one.
   */
  push (leg: FrameLeg, frame: Buffer): void {
    const source = leg.other
    if (!source.inMessage && !(source.state === DATA && source.forwarding)) return this.write(leg, frame)
    if (leg.pushes === undefined) leg.pushes = []
    leg.pushes.push(frame)
  }

  /** The message being written to `leg` has ended: the gateway's own messages that waited go out. */
  flushPushes (leg: FrameLeg, pushes: Buffer[]): void {
    leg.pushes = undefined
    for (const frame of pushes) this.write(leg, frame)
  }

  private writeControl (leg: FrameLeg, frame: Buffer): void {
    const socket = leg.socket
    if (!socket.writable) return
    socket.write(frame)
    if (frame[0] === CLOSE_FRAME_BYTE) {
      leg.closeWritten = true
      // Both close frames have passed (or the leg broke the protocol): the TCP connection ends.
      if (leg.closeReceived || leg.violation !== undefined) socket.end()
    }
  }
}

/** Whether a data frame to `leg` is half written: a control frame to it must wait for its end. */
function halfWritten (leg: FrameLeg): boolean {
  const source = leg.other
  return source.state === DATA && source.forwarding
}
