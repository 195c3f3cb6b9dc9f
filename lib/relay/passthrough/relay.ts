import type { Socket } from 'node:net'
import type WebSocket from 'ws'
import { ClientBufferFullError, ConnectionGoneError } from '../../errors'
import type { Outgoing } from '../../registry/types'
import type { RelayConnection } from '../connection'
import type { Engine } from '../types'
import { FrameCloser } from './closer'
import { EMPTY, OPCODE_PING, SERVER_PING, controlFrame, messageFrame } from './frames'
import { BULK_READ, READ_SIZE, borrowReads } from './borrow'
import { DISCARD, FrameLeg } from './leg'
import { FrameReader } from './reader'
import { detach, socketOf } from './ws-internals'
import { FrameWriter } from './writer'

/**
 * A socket no ws WebSocket was built on (the raw path: the gateway completed both upgrades
 * itself), and the bytes read past its upgrade's head: the first frames, relayed first.
 */
export interface RawLeg {
  readonly socket: Socket
  readonly head: Buffer
}

/** The leg a socket carries: one set of listeners (`FrameRelay.on*`) serves every connection. */
const kLeg = Symbol('fastify-ws-gateway.leg')
type LegSocket = Socket & { [kLeg]: FrameLeg }

/** Whether a leg comes from the raw path (no ws WebSocket was built on it). */
export function isRaw (from: WebSocket | RawLeg): from is RawLeg {
  return 'head' in from
}

function rawSocketOf (from: WebSocket | RawLeg): Socket {
  return isRaw(from) ? from.socket : socketOf(from)
}

/**
 * The passthrough engine: relays frames between a client and a backend over their raw sockets,
 * taken over from ws or, on the raw path, upgraded by the gateway itself (`RawLeg`). It is composed
 * of a reader (`FrameReader`), a writer (`FrameWriter`) and a closer (`FrameCloser`), which share the two legs' state (`FrameLeg`, one section each); close,
 * ping and pong frames are the gateway's own, as with the ws engine, whose close mirroring,
 * backpressure, heartbeat and idle timer this engine reproduces.
 *
 * @example
 * ```ts
 * const connection = new RelayConnection(settings, (c) => canAdopt(clientWs, backendWs)
 *   ? new FrameRelay(clientWs, backendWs, c)
 *   : new Relay(clientWs, backendWs, c))
 * ```
 */
export class FrameRelay implements Engine {
  readonly name = 'passthrough'
  readonly client: FrameLeg
  readonly backend: FrameLeg
  private readonly writer: FrameWriter
  private readonly closer: FrameCloser
  private readonly reader: FrameReader

  constructor (client: WebSocket | RawLeg, backend: WebSocket | RawLeg, private readonly connection: RelayConnection) {
    const { maxPayload, backendMaxPayload } = connection.settings
    this.writer = new FrameWriter(connection)
    this.closer = new FrameCloser(connection, this.writer)
    this.reader = new FrameReader(connection, this.writer, this.closer)
    // The gateway's maxPayload governs the client, the backend's own the backend (as with the ws
    // engine, whose legs ws holds to the same two limits).
    this.client = new FrameLeg(this, 'client', rawSocketOf(client), maxPayload)
    this.backend = new FrameLeg(this, 'backend', rawSocketOf(backend), backendMaxPayload)
    this.client.other = this.backend
    this.backend.other = this.client
    this.adopt(this.client, client)
    this.adopt(this.backend, backend)
  }

  /**
   * Takes a socket over: a raw one as it is, with its head put back in front of what is still to
   * be read (as ws does with an upgrade's head), or one from ws. Taking it over from ws is safe
   * with ws 8.23 because:
   * - `setSocket` puts four listeners on the socket (data, end, close, error; `canAdopt` checks
   *   each is there, recognised by identity), and ws's Receiver only ever gets bytes through the
   *   data one; with them gone ws never reads, closes or emits again. Its Sender only writes when
   *   the WebSocket is called, and nothing calls it any more: the route took the client out of
   *   `wss.clients` (so @fastify/websocket's preClose does not close it) and the upstream handed
   *   the backend over (`adopt()`).
   * - Nothing was read yet (`canAdopt` checks it): the client's handler runs synchronously inside
   *   ws's upgrade callback, right after `setSocket`, whose resume only takes effect on the next
   *   tick; the backend was paused synchronously in its 'open' handler, before any 'data'.
   * - Bytes ws unshifted onto the socket (the `head` of either upgrade) and those that arrived
   *   since are in the socket's readable buffer: our 'data' listener gets them first, in order.
   */
  private adopt (leg: FrameLeg, from: WebSocket | RawLeg): void {
    const socket = leg.socket as LegSocket
    socket[kLeg] = leg
    socket.on('error', FrameRelay.onError)
    if (!isRaw(from)) detach(from)
    else if (from.head.length > 0) socket.unshift(from.head)
    socket.on('data', FrameRelay.onData)
    socket.on('end', FrameRelay.onEnd)
    socket.on('close', FrameRelay.onClose)
    socket.on('drain', FrameRelay.onDrain)
    if (socket.closed) {
      // Gone before the relay began (e.g. a backend reset while the client's upgrade completed):
      // ended abnormally, once the route has registered the connection.
      process.nextTick(() => this.closer.closed(leg))
      return
    }
    socket.setNoDelay(true)
    socket.resume()
  }

  // The socket listeners, shared rather than made per connection (an idle connection is smaller).
  private static onError (this: LegSocket, err: Error): void {
    const leg = this[kLeg]
    leg.events.error(leg, err)
  }

  private static onData (this: LegSocket, chunk: Buffer): void {
    const leg = this[kLeg]
    // A leg that carries bulk data reads into a buffer of its own from now on (see borrow.ts).
    if (chunk.length >= BULK_READ && !leg.borrows) leg.borrows = borrowReads(this, FrameRelay.onRead, () => FrameRelay.nextBuffer(leg))
    leg.events.data(leg, chunk)
  }

  /** A read of a leg that borrows (`borrowReads`): `buffer[0, n)`, lent until its next read. */
  private static onRead (this: Socket, n: number, buffer: Buffer): void {
    const leg = (this as LegSocket)[kLeg]
    leg.events.data(leg, buffer.subarray(0, n))
  }

  /**
   * After a read of a leg that borrows: when the kernel did not take at once bytes of it written
   * to the other leg (`lent`), that buffer stays theirs and the leg reads on into a new one once it
   * is resumed — so nothing stops it from being read to the end of a frame (a close waiting for
   * it: `closeLeg` resumes a sender the closing leg had paused).
   */
  private static nextBuffer (leg: FrameLeg): Buffer | undefined {
    if (!leg.lent) return undefined
    leg.lent = false
    return Buffer.allocUnsafe(READ_SIZE)
  }

  private static onEnd (this: LegSocket): void {
    const leg = this[kLeg]
    leg.events.end(leg)
  }

  private static onClose (this: LegSocket): void {
    const leg = this[kLeg]
    leg.events.close(leg)
  }

  private static onDrain (this: LegSocket): void {
    const leg = this[kLeg]
    leg.events.drain(leg)
  }

  // The leg events (`LegEvents`): each goes to the part that owns it.
  data (leg: FrameLeg, chunk: Buffer): void {
    this.reader.receive(leg, chunk)
  }

  end (leg: FrameLeg): void {
    this.closer.ended(leg)
  }

  close (leg: FrameLeg): void {
    this.closer.closed(leg)
  }

  drain (leg: FrameLeg): void {
    this.writer.drained(leg)
  }

  error (leg: FrameLeg, err: Error): void {
    this.connection.settings.log.debug({ err, leg: leg.name }, 'ws gateway leg error')
  }

  closeLeg (leg: FrameLeg, code: number | undefined, reason: string | Buffer): void {
    this.closer.closeLeg(leg, code, reason)
  }

  push ({ data, binary }: Outgoing): void {
    const client = this.client
    if (client.closing || !client.socket.writable) throw new ConnectionGoneError()
    let waiting = client.socket.writableLength
    for (const frame of client.pushes ?? []) waiting += frame.length
    if (waiting > this.connection.settings.highWaterMark) throw new ClientBufferFullError()
    this.writer.push(client, messageFrame(data, binary))
  }

  /** Ends both legs at once, without a close handshake (the last step of a shutdown). */
  terminate (): void {
    this.client.socket.destroy()
    this.backend.socket.destroy()
  }

  cut (leg: FrameLeg): void {
    // The rest of the chunk being read is not parsed either.
    leg.state = DISCARD
    leg.socket.destroy()
  }

  /** One heartbeat tick: a leg that did not answer the last ping is destroyed, the rest pinged. */
  heartbeat (): void {
    this.beat(this.client)
    this.beat(this.backend)
  }

  private beat (leg: FrameLeg): void {
    if (leg.closing || leg.code !== undefined) return
    if (!leg.alive) {
      this.connection.settings.log.debug({ leg: leg.name }, 'ws gateway leg missed a heartbeat')
      leg.socket.destroy()
      return
    }
    leg.alive = false
    this.writer.sendControl(leg, leg.fromClient ? SERVER_PING : controlFrame(OPCODE_PING, EMPTY, true))
  }
}
