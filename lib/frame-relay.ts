import type { Socket } from 'node:net'
import type WebSocket from 'ws'
import { CloseCode } from './close-codes'
import { EMPTY, OPCODE_CLOSE, OPCODE_PING, OPCODE_PONG, controlFrame, frameProblem, headerSize, payloadLength, unmask } from './frames'
import type { RateLimiter } from './rate-limit'
import type { RelaySettings } from './relay'
import { CONTROL, CONTROL_AT, DATA, FrameLeg, HEADER, detach, gather, limitOf, socketOf } from './frame-leg'
import { FrameCloser } from './frame-closer'

/** The leg a socket carries: one set of listeners (`FrameRelay.on*`) serves every connection. */
const kLeg = Symbol('fastify-ws-gateway.leg')
type LegSocket = Socket & { [kLeg]: FrameLeg }

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
export class FrameRelay extends FrameCloser {
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
          if (head === chunk && leg.fromClient && payload > 0) chunk.copy(leg.scratch, 2, at + 2, at + 6)
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
    this.flushPending(to, to.pending)
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
    if (leg.opcode === OPCODE_PING) {
      if (!leg.closing) this.sendControl(leg, controlFrame(OPCODE_PONG, payload, !leg.fromClient))
    } else if (leg.opcode === OPCODE_PONG) {
      leg.alive = true
    } else {
      this.closeReceived(leg, payload)
    }
  }
}
