import type { RelayConnection } from '../connection'
import { CLOSE_FRAME_BYTE, EMPTY } from './frames'
import { DATA, type FrameLeg } from './leg'

/** Why a leg is not being read (bits: a leg stays paused while any is set). */
export const OTHER_FULL = 1
export const SELF_FULL = 2
export const QUEUE_FULL = 4

/** Control frames that may wait for a frame boundary on one leg before its reader is paused. */
const MAX_PENDING = 32

/**
 * The writing part of the passthrough engine: bytes out to a leg, back-pressure between the legs,
 * and the gateway's own control frames, which may only go out between frames.
 */
export class FrameWriter {
  constructor (private readonly connection: RelayConnection) {}

  /** Forwards `chunk[from, end)` to `to`; pauses the sender when `to` is backed up. */
  forward (to: FrameLeg, chunk: Buffer, from: number, end: number): void {
    this.write(to, from === 0 && end === chunk.length ? chunk : chunk.subarray(from, end))
  }

  write (to: FrameLeg, bytes: Buffer): void {
    const socket = to.socket
    if (!socket.writable) return
    // Once `to` is closing, only the rest of a frame already begun goes out (see `closeLeg`).
    if ((!socket.write(bytes) || socket.writableLength > this.connection.settings.highWaterMark) && !to.closing) this.full(to, to.other, OTHER_FULL)
  }

  /** `to` is over its limit: stop reading `leg` until `to` has written what it holds. */
  private full (to: FrameLeg, leg: FrameLeg, reason: number): void {
    this.block(leg, reason)
    // 'drain' only comes after a write returned false; below the socket's own high-water mark
    // (a `highWaterMark` under 16 KiB), an empty write's callback says when the rest is written.
    if (!to.socket.writableNeedDrain) to.socket.write(EMPTY, () => this.drained(to))
  }

  private block (leg: FrameLeg, reason: number): void {
    if (leg.paused === 0) leg.socket.pause()
    // A client that leaves the backend paused for too long is closed (`slowConsumerTimeout`).
    if (reason === OTHER_FULL && !leg.fromClient && (leg.paused & OTHER_FULL) === 0) this.connection.clientBackedUp()
    leg.paused |= reason
  }

  unblock (leg: FrameLeg, reason: number): void {
    if ((leg.paused & reason) === 0) return
    leg.paused &= ~reason
    if (reason === OTHER_FULL && !leg.fromClient) this.connection.clientCaughtUp()
    if (leg.paused === 0) leg.socket.resume()
  }

  /** `leg` has written all it held: read both legs again if that is what they waited for. */
  drained (leg: FrameLeg): void {
    this.unblock(leg.other, OTHER_FULL)
    this.unblock(leg, SELF_FULL)
  }

  /**
   * Writes a control frame to `leg`, or queues it while a data frame to `leg` is half written (a
   * control frame may come between the fragments of a message, never inside a frame).
   */
  sendControl (leg: FrameLeg, frame: Buffer): void {
    const source = leg.other
    if (source.state !== DATA || !source.forwarding) return this.writeControl(leg, frame)
    if (leg.pending === undefined) leg.pending = []
    leg.pending.push(frame)
    if (leg.pending.length >= MAX_PENDING) this.block(leg, QUEUE_FULL)
  }

  /** A data frame to `leg` has ended: the control frames that waited for it go out. */
  flushPending (leg: FrameLeg, pending: Buffer[]): void {
    leg.pending = undefined
    for (const frame of pending) this.writeControl(leg, frame)
    this.unblock(leg, QUEUE_FULL)
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
    const written = socket.write(frame)
    if (frame[0] === CLOSE_FRAME_BYTE) {
      leg.closeWritten = true
      // Both close frames have passed (or the leg broke the protocol): the TCP connection ends.
      if (leg.closeReceived || leg.violation !== undefined) socket.end()
    } else if (!written || socket.writableLength > this.connection.settings.highWaterMark) {
      // A peer that pings without reading our pongs is not read either until it catches up.
      this.full(leg, leg, SELF_FULL)
    }
  }
}
