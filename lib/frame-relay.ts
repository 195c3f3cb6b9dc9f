import { isUtf8 } from 'node:buffer'
import type WebSocket from 'ws'
import { CloseCode, isSendable, truncateReason } from './close-codes'
import {
  CLOSE_FRAME_BYTE, EMPTY, OPCODE_CLOSE, OPCODE_PING, OPCODE_PONG,
  SERVER_PING, closeFrame, controlFrame, frameProblem, headerSize, payloadLength, unmask
} from './frames'
import type { RateLimiter } from './rate-limit'
import type { RelaySettings } from './relay'
import { RelayConnection } from './connection'
import type { Socket } from 'node:net'
import { CONTROL, CONTROL_AT, DATA, DISCARD, FrameLeg, HEADER, detach, gather, limitOf, socketOf } from './frame-leg'

/** Why a leg is not being read (bits: a leg stays paused while any is set). */
const OTHER_FULL = 1
const SELF_FULL = 2
const QUEUE_FULL = 4

/** The leg a socket carries: one set of listeners (`FrameRelay.on*`) serves every connection. */
const kLeg = Symbol('fastify-ws-gateway.leg')
type LegSocket = Socket & { [kLeg]: FrameLeg }

/** Control frames that may wait for a frame boundary on one leg before its reader is paused. */
const MAX_PENDING = 32

/**
 * Relays frames between a client and a backend over their raw sockets: headers are read and
 * checked, payloads are forwarded as they arrive, untouched (client frames keep their mask: they
 * are valid client → server frames as they are), and never gathered into messages. Close, ping
 * and pong frames are the gateway's own, as with the ws engine (`Relay`), whose close mirroring,
 * backpressure, heartbeat and idle timer this engine reproduces.
 *
 * Text payloads are not checked for UTF-8: the backend's ws does that and its 1007 is mirrored
 * to the client. Only legs without extensions can be relayed this way (RSV bits must be 0).
 *
 * @example
 * ```ts
 * const connection = canAdopt(clientWs, backendWs)
 *   ? new FrameRelay(clientWs, backendWs, settings)
 *   : new Relay(clientWs, backendWs, settings)
 * ```
 */
export class FrameRelay extends RelayConnection {
  /** Milliseconds a leg gets to answer our close frame before its socket is destroyed (ws's default). */
  static closeTimeout = 30_000

  readonly client: FrameLeg
  readonly backend: FrameLeg

  constructor (clientWs: WebSocket, backendWs: WebSocket, settings: RelaySettings) {
    super(settings)
    this.client = new FrameLeg(this, 'client', socketOf(clientWs), limitOf(clientWs, settings.maxPayload))
    this.backend = new FrameLeg(this, 'backend', socketOf(backendWs), limitOf(backendWs, settings.maxPayload))
    this.client.other = this.backend
    this.backend.other = this.client
    this.adopt(this.client)
    this.adopt(this.backend)
  }

  /**
   * Takes a socket over from ws. Safe with ws 8.23 because:
   * - `setSocket` puts exactly four listeners on the socket (`WS_SOCKET_LISTENERS`), and ws's
   *   Receiver only ever gets bytes through `socketOnData`; with them gone ws never reads, closes
   *   or emits again. Its Sender only writes when the WebSocket is called, and nothing calls it
   *   any more: the route took the client out of `wss.clients` (so @fastify/websocket's preClose
   *   does not close it) and the upstream handed the backend over (`adopt()`).
   * - Nothing was read yet (`canAdopt` checks it): the client's handler runs synchronously inside
   *   ws's upgrade callback, right after `setSocket`, whose resume only takes effect on the next
   *   tick; the backend was paused synchronously in its 'open' handler, before any 'data'.
   * - Bytes ws unshifted onto the socket (the `head` of either upgrade) and those that arrived
   *   since are in the socket's readable buffer: our 'data' listener gets them first, in order.
   */
  private adopt (leg: FrameLeg): void {
    const socket = leg.socket as LegSocket
    socket[kLeg] = leg
    socket.on('error', FrameRelay.onError)
    detach(socket)
    socket.on('data', FrameRelay.onData)
    socket.on('end', FrameRelay.onEnd)
    socket.on('close', FrameRelay.onClose)
    socket.on('drain', FrameRelay.onDrain)
    if (socket.closed) {
      // Gone before the relay began (e.g. a backend reset while the client's upgrade completed):
      // ended abnormally, once the route has registered the connection.
      process.nextTick(() => this.closed(leg))
      return
    }
    socket.setNoDelay(true)
    socket.resume()
  }

  // The socket listeners, shared rather than made per connection (an idle connection is smaller).
  private static onError (this: LegSocket, err: Error): void {
    const leg = this[kLeg]
    leg.relay.settings.log.debug({ err, leg: leg.name }, 'ws gateway leg error')
  }

  private static onData (this: LegSocket, chunk: Buffer): void {
    const leg = this[kLeg]
    leg.relay.receive(leg, chunk)
  }

  private static onEnd (this: LegSocket): void {
    const leg = this[kLeg]
    leg.relay.ended(leg)
  }

  private static onClose (this: LegSocket): void {
    const leg = this[kLeg]
    leg.relay.closed(leg)
  }

  private static onDrain (this: LegSocket): void {
    const leg = this[kLeg]
    leg.relay.drained(leg)
  }

  /** Reads a chunk of one leg: forwards data frames' bytes, handles control frames, checks all. */
  private receive (leg: FrameLeg, chunk: Buffer): void {
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
        if (leg.forwarding && from === -1) from = pos
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
          if (from !== -1) this.forward(to, chunk, from, start)
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
          if (from !== -1) this.forward(to, chunk, from, start)
          from = -1
          if (problem !== undefined) return this.violate(leg, 1002, problem)
          if (opcode < OPCODE_CLOSE) return this.violate(leg, CloseCode.MESSAGE_TOO_BIG, 'message too big')
          // A control frame: read whole into `leg.scratch`, its mask key (clients') at 2..5.
          if (head === chunk && leg.fromClient) chunk.copy(leg.scratch, 2, at + 2, at + 6)
          leg.opcode = opcode
          leg.left = payload
          leg.controlLength = 0
          leg.state = CONTROL
          if (payload === 0) this.control(leg)
          continue
        }
        if (this.rateLimiter !== undefined && leg.fromClient && !this.admit(leg, opcode, payload)) {
          // Closing: what came before goes out first; this frame and the rest are dropped.
          if (from !== -1) this.forward(to, chunk, from, start)
          from = -1
          this.end(CloseCode.POLICY, 'rate limit')
        }
        leg.messageBytes = (opcode === 0 ? leg.messageBytes : 0) + payload
        leg.inMessage = (b0 & 0x80) === 0
        leg.fin = !leg.inMessage
        leg.forwarding = !leg.dropping && !to.closing && to.socket.writable
        if (!leg.forwarding) {
          // Dropped: the bytes before it go out now, none of its own.
          if (from !== -1) this.forward(to, chunk, from, start)
          from = -1
        } else if (head === chunk) {
          if (from === -1) from = start
        } else {
          this.write(to, Buffer.from(head.subarray(0, headerSize(head[1]))))
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
    if (from !== -1) this.forward(to, chunk, from, pos)
    if (data) this.idleTimer?.refresh()
  }

  /**
   * Charges a client data frame to the rate limit. Every frame counts as a message (fragments
   * included, so splitting a message cannot dodge the byte budget): over the limit, a message's
   * first frame is dropped with the rest of the message (`'drop'`), otherwise — or when a message
   * is already half relayed and can no longer be dropped whole — the client is closed 1008.
   */
  private admit (leg: FrameLeg, opcode: number, payload: number): boolean {
    if (opcode !== 0) leg.dropping = false
    if (leg.dropping || (this.rateLimiter as RateLimiter).take(payload)) return true
    leg.dropping = true
    if (opcode === 0 || !this.dropsOverLimit) return false
    this.dropped++
    return true
  }

  /**
   * The current data frame of `leg` is complete: count a finished message, and write the control
   * frames that waited for this frame boundary on the other leg. Returns the new `from`.
   */
  private frameDone (leg: FrameLeg, chunk: Buffer, from: number, pos: number): number {
    leg.state = HEADER
    if (leg.fin) leg.traffic.frames++
    const to = leg.other
    if (to.pending === undefined) return from
    if (from !== -1) this.forward(to, chunk, from, pos)
    const pending = to.pending
    to.pending = undefined
    for (const frame of pending) this.writeControl(to, frame)
    this.unblock(to, QUEUE_FULL)
    return -1
  }

  /** Forwards `chunk[from, end)` to `to`; pauses the sender when `to` is backed up. */
  private forward (to: FrameLeg, chunk: Buffer, from: number, end: number): void {
    this.write(to, from === 0 && end === chunk.length ? chunk : chunk.subarray(from, end))
  }

  private write (to: FrameLeg, bytes: Buffer): void {
    const socket = to.socket
    if (!socket.writable) return
    // Once `to` is closing, only the rest of a frame already begun goes out (see `closeLeg`).
    if ((!socket.write(bytes) || socket.writableLength > this.settings.highWaterMark) && !to.closing) this.full(to, to.other, OTHER_FULL)
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
    if (reason === OTHER_FULL && !leg.fromClient && (leg.paused & OTHER_FULL) === 0) this.clientBackedUp()
    leg.paused |= reason
  }

  private unblock (leg: FrameLeg, reason: number): void {
    if ((leg.paused & reason) === 0) return
    leg.paused &= ~reason
    if (reason === OTHER_FULL && !leg.fromClient) this.clientCaughtUp()
    if (leg.paused === 0) leg.socket.resume()
  }

  /** `leg` has written all it held: read both legs again if that is what they waited for. */
  private drained (leg: FrameLeg): void {
    this.unblock(leg.other, OTHER_FULL)
    this.unblock(leg, SELF_FULL)
  }

  /** A whole control frame arrived on `leg`. */
  private control (leg: FrameLeg): void {
    const scratch = leg.scratch
    const payload = scratch.subarray(CONTROL_AT, CONTROL_AT + leg.controlLength)
    if (leg.fromClient) unmask(payload, scratch, 2)
    leg.state = HEADER
    if (leg.opcode === OPCODE_PING) {
      if (!leg.closing) this.sendControl(leg, controlFrame(OPCODE_PONG, payload, !leg.fromClient))
    } else if (leg.opcode === OPCODE_PONG) {
      leg.alive = true
    } else {
      this.closeReceived(leg, payload)
    }
  }

  /** A close frame arrived on `leg`: answer it, then close the other leg per the mirror table. */
  private closeReceived (leg: FrameLeg, payload: Buffer): void {
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
  private violate (leg: FrameLeg, code: number, reason: string): void {
    this.settings.log.debug({ leg: leg.name, code, reason }, 'ws gateway leg broke the protocol')
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

  /**
   * Closes the other leg the way the ws engine does (the README's table): a planned close wins;
   * after a violation the other side learns its peer went away (1001) or, for a backend breaking
   * the protocol, that the gateway got a bad answer (1014; 1001 for a too-big message); no status
   * is passed on as no status; a client gone without a close takes the backend's socket with it,
   * a backend gone without a close becomes 1014; any other code and reason are passed on.
   */
  private mirror (leg: FrameLeg, code: number, reason: Buffer): void {
    if (leg.mirrored) return
    leg.mirrored = true
    const other = leg.other
    if (other.planned !== undefined) return this.closeLeg(other, other.planned.code, other.planned.reason)
    if (leg.violation !== undefined) {
      if (leg.fromClient || leg.violation === CloseCode.MESSAGE_TOO_BIG) this.closeLeg(other, CloseCode.GOING_AWAY, 'going away')
      else this.closeLeg(other, CloseCode.BAD_GATEWAY, 'bad gateway')
    } else if (code === CloseCode.NO_STATUS) {
      this.closeLeg(other, undefined, EMPTY)
    } else if (code === CloseCode.ABNORMAL) {
      if (leg.fromClient) other.socket.destroy()
      else this.closeLeg(other, CloseCode.BAD_GATEWAY, 'bad gateway')
    } else {
      this.closeLeg(other, code, reason)
    }
  }

  /** Sends `leg` a close frame (none twice); its socket is destroyed if it does not finish in time. */
  protected closeLeg (leg: FrameLeg, code: number | undefined, reason: string | Buffer): void {
    if (leg.closing || !leg.socket.writable) return
    leg.closing = true
    leg.closeTimer = setTimeout(() => leg.socket.destroy(), FrameRelay.closeTimeout).unref()
    this.sendControl(leg, closeFrame(code, truncateReason(reason), !leg.fromClient))
    // A close waiting for the end of a frame must not wait for a sender paused because of this
    // very leg (a slow consumer): the rest of that one frame, at most `maxPayload`, is read and
    // buffered; nothing after it is forwarded to a closing leg.
    if (leg.pending !== undefined) this.unblock(leg.other, OTHER_FULL)
  }

  /**
   * Writes a control frame to `leg`, or queues it while a data frame to `leg` is half written (a
   * control frame may come between the fragments of a message, never inside a frame).
   */
  private sendControl (leg: FrameLeg, frame: Buffer): void {
    const source = leg.other
    if (source.state !== DATA || !source.forwarding) return this.writeControl(leg, frame)
    if (leg.pending === undefined) leg.pending = []
    leg.pending.push(frame)
    if (leg.pending.length >= MAX_PENDING) this.block(leg, QUEUE_FULL)
  }

  private writeControl (leg: FrameLeg, frame: Buffer): void {
    const socket = leg.socket
    if (!socket.writable) return
    const written = socket.write(frame)
    if (frame[0] === CLOSE_FRAME_BYTE) {
      leg.closeWritten = true
      // Both close frames have passed (or the leg broke the protocol): the TCP connection ends.
      if (leg.closeReceived || leg.violation !== undefined) socket.end()
    } else if (!written || socket.writableLength > this.settings.highWaterMark) {
      // A peer that pings without reading our pongs is not read either until it catches up.
      this.full(leg, leg, SELF_FULL)
    }
  }

  /** The peer of `leg` half-closed its TCP connection: without a close frame, that is 1006. */
  private ended (leg: FrameLeg): void {
    this.lost(leg)
    // Ending twice costs an ERR_STREAM_ALREADY_FINISHED error object, on every normal close.
    if (!leg.socket.writableEnded) leg.socket.end()
  }

  private closed (leg: FrameLeg): void {
    leg.closed = true
    this.lost(leg)
    clearTimeout(leg.closeTimer)
    this.unblock(leg.other, OTHER_FULL)
    if (!leg.other.closed) return
    this.finish()
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

  /**
   * Starts a graceful close from the gateway's side (shutdown): the client leg is closed first and
   * the backend leg only once the client's close arrives, so every message the client sent before
   * it saw the close still reaches the backend.
   */
  shutdown (code: number, reason: string): void {
    this.backend.planned = { code, reason }
    this.closeLeg(this.client, code, reason)
  }

  /** Ends both legs at once, without a close handshake (the last step of a shutdown). */
  terminate (): void {
    this.client.socket.destroy()
    this.backend.socket.destroy()
  }

  /** One heartbeat tick: a leg that did not answer the last ping is destroyed, the rest pinged. */
  heartbeat (): void {
    this.beat(this.client)
    this.beat(this.backend)
  }

  private beat (leg: FrameLeg): void {
    if (leg.closing || leg.code !== undefined) return
    if (!leg.alive) {
      this.settings.log.debug({ leg: leg.name }, 'ws gateway leg missed a heartbeat')
      leg.socket.destroy()
      return
    }
    leg.alive = false
    this.sendControl(leg, leg.fromClient ? SERVER_PING : controlFrame(OPCODE_PING, EMPTY, true))
  }
}
