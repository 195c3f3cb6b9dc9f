import { CloseCode } from '../close-codes'
import type { RelayConnection } from '../connection'
import type { RateLimiter } from '../rate-limit'
import type { FrameCloser } from './closer'
import { EMPTY, OPCODE_CLOSE, OPCODE_PING, frameProblem, headerSize, payloadLength, unmask } from './frames'
import { CONTROL, CONTROL_AT, DATA, DISCARD, HEADER, gather, type FrameLeg } from './leg'
import { newMask, remask } from './mask'
import type { FrameWriter } from './writer'

/**
 * The reading part of the passthrough engine: headers are read and checked, payloads are
 * forwarded as they arrive, never gathered into messages — backend frames untouched, client
 * frames masked again with a fresh key of the gateway's (mask.ts) but never unmasked. Control
 * frames are the gateway's own: pings are answered, pongs noted, close frames handed to the
 * closer; the client's pings and pongs count toward its rate limit.
 *
 * Text payloads are not checked for UTF-8: the backend's ws does that and its 1007 is mirrored
 * to the client. Only legs without extensions can be relayed this way (RSV bits must be 0).
 */
export class FrameReader {
  constructor (private readonly connection: RelayConnection, private readonly writer: FrameWriter, private readonly closer: FrameCloser) {}

  /** Reads a chunk of one leg: forwards data frames' bytes, handles control frames, checks all. */
  receive (leg: FrameLeg, chunk: Buffer): void {
    const to = leg.other
    const length = chunk.length
    let pos = 0
    /** Where the bytes of `chunk` still to forward begin, or -1. */
    let from = -1
    let data = false
    while (pos < length) {
      const state = leg.state
      if (state === DATA) {
        const n = Math.min(leg.left, length - pos)
        if (leg.forwarding) {
          if (from === -1) from = pos
          if (leg.fromClient) {
            remask(chunk, pos, pos + n, leg.maskDelta, leg.maskOffset)
            leg.maskOffset += n
          }
        }
        pos += n
        leg.left -= n
        leg.traffic.bytes += n
        data = true
        if (leg.left === 0) from = this.frameDone(leg, chunk, from, pos)
      } else if (state === HEADER) {
        const start = pos
        let head = chunk
        let at = pos
        if (leg.headLength === 0 && length - pos >= 2 && length - pos >= headerSize(chunk[pos + 1])) {
          pos += headerSize(chunk[pos + 1])
        } else {
          // A header split across reads: gathered in `leg.scratch`, and copied when forwarded.
          if (from !== -1) this.writer.forward(to, chunk, from, start)
          from = -1
          pos = gather(leg, chunk, pos)
          head = leg.scratch
          if (leg.headLength < 2 || leg.headLength < headerSize(head[1])) break
          at = 0
          leg.headLength = 0
        }
        const b0 = head[at]
        const problem = frameProblem(b0, head[at + 1], leg.fromClient, leg.inMessage)
        const opcode = b0 & 0x0f
        const payload = problem === undefined ? payloadLength(head, at) : 0
        if (problem !== undefined || opcode >= OPCODE_CLOSE || payload < 0 ||
            (opcode === 0 ? leg.messageBytes : 0) + payload > leg.maxPayload) {
          // Bytes before this header go out first: a close sent below must follow them.
          if (from !== -1) this.writer.forward(to, chunk, from, start)
          from = -1
          if (problem !== undefined) return this.closer.violate(leg, 1002, problem)
          if (opcode < OPCODE_CLOSE) return this.closer.violate(leg, CloseCode.MESSAGE_TOO_BIG, 'message too big')
          // A control frame: read whole into `leg.scratch`, its mask key (clients') at 2..5.
          if (head === chunk && leg.fromClient && payload > 0) chunk.copy(leg.scratch, 2, at + 2, at + 6)
          leg.opcode = opcode
          leg.left = payload
          leg.controlLength = 0
          leg.state = CONTROL
          if (payload === 0) this.control(leg)
          continue
        }
        if (this.connection.rateLimiter !== undefined && leg.fromClient && !this.admit(leg, opcode, payload)) {
          // Closing: what came before goes out first; this frame and the rest are dropped.
          if (from !== -1) this.writer.forward(to, chunk, from, start)
          from = -1
          this.connection.overLimit()
          if (leg.state === DISCARD) return
        }
        leg.messageBytes = (opcode === 0 ? leg.messageBytes : 0) + payload
        leg.inMessage = (b0 & 0x80) === 0
        leg.fin = !leg.inMessage
        leg.forwarding = !leg.dropping && !to.closing && to.socket.writable
        if (!leg.forwarding) {
          // Dropped: the bytes before it go out now, none of its own.
          if (from !== -1) this.writer.forward(to, chunk, from, start)
          from = -1
        } else if (head === chunk) {
          if (from === -1) from = start
          if (leg.fromClient) this.newMask(leg, chunk, pos)
        } else {
          const header = Buffer.from(head.subarray(0, headerSize(head[1])))
          if (leg.fromClient) this.newMask(leg, header, header.length)
          this.writer.write(to, header)
        }
        data = true
        leg.left = payload
        leg.state = DATA
        if (payload === 0) from = this.frameDone(leg, chunk, from, pos)
      } else if (state === CONTROL) {
        const n = Math.min(leg.left, length - pos)
        chunk.copy(leg.scratch, CONTROL_AT + leg.controlLength, pos, pos + n)
        leg.controlLength += n
        leg.left -= n
        pos += n
        if (leg.left === 0) this.control(leg)
      } else {
        pos = length
      }
    }
    if (from !== -1) this.writer.forward(to, chunk, from, pos)
    if (data) this.connection.active()
  }

  /** A client frame whose header ends at `end` goes out with a new mask key, its payload masked again. */
  private newMask (leg: FrameLeg, header: Buffer, end: number): void {
    leg.maskDelta = newMask(header, end - 4)
    leg.maskOffset = 0
  }

  /**
   * Charges a client data frame to the rate limit: a message's first frame counts as a message,
   * as the ws engine counts it, and every frame's bytes as they come (so splitting a message
   * cannot dodge the byte budget). Over the limit, a message's first frame is dropped with the
   * rest of the message (`'drop'`), otherwise — or when a message is already half relayed and can
   * no longer be dropped whole — the client is closed 1008.
   */
  private admit (leg: FrameLeg, opcode: number, payload: number): boolean {
    if (opcode !== 0) leg.dropping = false
    if (leg.dropping || (this.connection.rateLimiter as RateLimiter).take(opcode === 0 ? 0 : 1, payload)) return true
    leg.dropping = true
    if (opcode === 0 || !this.connection.dropsOverLimit) return false
    this.connection.dropped++
    return true
  }

  /**
   * The current data frame of `leg` is complete: count a finished message, and write what waited
   * on the other leg for this boundary — control frames for the end of a frame, the gateway's own
   * messages for the end of a message. Returns the new `from`.
   */
  private frameDone (leg: FrameLeg, chunk: Buffer, from: number, pos: number): number {
    leg.state = HEADER
    if (leg.fin) leg.traffic.frames++
    const to = leg.other
    const pushes = leg.fin ? to.pushes : undefined
    if (to.pending === undefined && to.pong === undefined && pushes === undefined) return from
    if (from !== -1) this.writer.forward(to, chunk, from, pos)
    this.writer.flushPending(to)
    if (pushes !== undefined) this.writer.flushPushes(to, pushes)
    return -1
  }

  /** A whole control frame arrived on `leg`. */
  private control (leg: FrameLeg): void {
    let payload: Buffer = EMPTY
    // Empty pings and pongs (the heartbeat's) never need the scratch buffer.
    if (leg.controlLength > 0) {
      const scratch = leg.scratch
      payload = scratch.subarray(CONTROL_AT, CONTROL_AT + leg.controlLength)
      if (leg.fromClient) unmask(payload, scratch, 2)
    }
    leg.state = HEADER
    if (leg.opcode === OPCODE_CLOSE) return this.closer.closeReceived(leg, payload)
    // Charged even after our close frame (see `overLimit`), but no longer heeded.
    if ((leg.fromClient && !this.connection.admit(1, payload.length)) || leg.closing) return
    if (leg.opcode === OPCODE_PING) this.writer.pong(leg, payload)
    else leg.alive = true
  }
}
