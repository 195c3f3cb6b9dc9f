import { isUtf8 } from 'node:buffer'
import { CloseCode, isSendable, mirrorClose, truncateReason } from '../close-codes'
import type { RelayConnection } from '../connection'
import { EMPTY, closeFrame } from './frames'
import { DATA, DISCARD, type FrameLeg } from './leg'
import type { FrameWriter } from './writer'

/**
 * The closing part of the passthrough engine: close frames received and answered, protocol
 * violations, sockets that end without a close, and the close of the other leg that follows —
 * the same mirror table as the ws engine's (see the README's close codes).
 */
export class FrameCloser {
  /** Milliseconds a leg gets to answer our close frame before its socket is destroyed (ws's default). */
  static closeTimeout = 30_000

  constructor (private readonly connection: RelayConnection, private readonly writer: FrameWriter) {}

  /** A close frame arrived on `leg`: answer it, then close the other leg per the mirror table. */
  closeReceived (leg: FrameLeg, payload: Buffer): void {
    let code: number = CloseCode.NO_STATUS
    let reason: Buffer = EMPTY
    if (payload.length === 1) return this.violate(leg, 1002, 'invalid close frame')
    if (payload.length > 1) {
      code = payload.readUInt16BE(0)
      if (!isSendable(code)) return this.violate(leg, 1002, 'invalid close code')
      reason = payload.subarray(2)
      if (!isUtf8(reason)) return this.violate(leg, 1007, 'invalid UTF-8 in close reason')
    }
    leg.state = DISCARD
    leg.closeReceived = true
    leg.code = code
    this.answer(leg, code === CloseCode.NO_STATUS ? undefined : code, reason)
    this.mirror(leg, code, reason)
  }

  /** `leg` broke the protocol: it is closed with `code`, and stops being read. */
  violate (leg: FrameLeg, code: number, reason: string): void {
    this.connection.settings.log.debug({ leg: leg.name, code, reason }, 'ws gateway leg broke the protocol')
    leg.state = DISCARD
    leg.violation = code
    this.answer(leg, code, reason)
    this.mirror(leg, code, EMPTY)
  }

  /** Closes `leg` after its close frame or violation; when our close went out already, ends it. */
  private answer (leg: FrameLeg, code: number | undefined, reason: string | Buffer): void {
    if (!leg.closing) this.closeLeg(leg, code, reason)
    else if (leg.closeWritten) leg.socket.end()
  }

  /** Closes the other leg: a planned close wins, otherwise the README's table (`mirrorClose`). */
  private mirror (leg: FrameLeg, code: number, reason: Buffer): void {
    if (leg.mirrored) return
    leg.mirrored = true
    const other = leg.other
    if (other.planned !== undefined) return this.closeLeg(other, other.planned.code, other.planned.reason)
    const violation = leg.violation === undefined ? undefined : leg.violation === CloseCode.MESSAGE_TOO_BIG ? 'too big' : 'other'
    const close = mirrorClose({ fromClient: leg.fromClient, violation, code, reason })
    if (close === 'cut') other.socket.destroy()
    else this.closeLeg(other, close.code, close.reason)
  }

  /** Sends `leg` a close frame (none twice); its socket is destroyed if it does not finish in time. */
  closeLeg (leg: FrameLeg, code: number | undefined, reason: string | Buffer): void {
    if (leg.closing || !leg.socket.writable) return
    leg.closing = true
    leg.closeTimer = setTimeout(() => leg.socket.destroy(), FrameCloser.closeTimeout).unref()
    this.writer.sendControl(leg, closeFrame(code, truncateReason(reason), !leg.fromClient))
    // A close waiting for the end of a frame must not wait for a sender paused because of this
    // very leg (a slow consumer): the rest of that one frame, at most `maxPayload`, is read and
    // buffered; nothing after it is forwarded to a closing leg.
    if (leg.pending !== undefined) this.writer.drained(leg)
  }

  /** The peer of `leg` half-closed its TCP connection: without a close frame, that is 1006. */
  ended (leg: FrameLeg): void {
    this.lost(leg)
    // Ending twice costs an ERR_STREAM_ALREADY_FINISHED error object, on every normal close.
    if (!leg.socket.writableEnded) leg.socket.end()
  }

  closed (leg: FrameLeg): void {
    leg.closed = true
    this.lost(leg)
    clearTimeout(leg.closeTimer)
    this.writer.drained(leg)
    if (!leg.other.closed) return
    this.connection.finish()
  }

  /** The socket of `leg` ends: what it did not say in a close frame, ws reports as 1006. */
  private lost (leg: FrameLeg): void {
    if (leg.code === undefined) leg.code = CloseCode.ABNORMAL
    // A frame half written to the other leg can never be completed, so no close frame can follow
    // it there: that leg's TCP connection is cut instead.
    if (leg.state === DATA && leg.forwarding && !leg.other.closed) {
      leg.forwarding = false
      leg.other.socket.destroy()
    }
    this.mirror(leg, CloseCode.ABNORMAL, EMPTY)
  }
}
