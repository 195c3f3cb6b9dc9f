import type WebSocket from 'ws'
import { ClientBufferFullError, ConnectionGoneError } from '../../errors'
import type { Outgoing } from '../../registry/types'
import { CloseCode, mirrorClose, truncateReason } from '../close-codes'
import type { RelayConnection } from '../connection'
import { answerPingsYourself, onFrameTooBig } from '../passthrough/ws-internals'
import type { Engine, LegName, LegState, PlannedClose, Traffic } from '../types'

/** One side of the relay: its socket and what the relay tracks about it. */
class Leg implements LegState {
  readonly traffic: Traffic = { frames: 0, bytes: 0 }
  /** The close code this leg ended with (1005 none, 1006 abnormal), once closed. */
  code: number | undefined
  /** Set by a ws protocol error (bad UTF-8, oversized message…) that made ws close this leg. */
  violation: string | undefined
  /** How to close this leg when the other one closes, if the gateway has decided. */
  planned: PlannedClose | undefined
  /** Whether this leg is not being read because the other one is over its high-water mark. */
  paused = false
  /** Whether a pong came back since the last heartbeat ping. */
  alive = true
  /** A pong is being written to this leg (its write has not completed). */
  ponging = false
  /** The payload of the latest ping not answered yet, while a pong is being written. */
  nextPong: Buffer | undefined

  constructor (readonly name: LegName, readonly ws: WebSocket) {}

  /** Closes this leg with a code (none for 1005) unless it is already closing. */
  close (code?: number, reason?: string | Buffer): void {
    if (this.ws.readyState !== this.ws.OPEN) return
    // The peer's close frame queues behind whatever it still has to send: read on, or the close
    // handshake could never finish.
    if (this.paused) {
      this.paused = false
      this.ws.resume()
    }
    if (code === undefined) this.ws.close()
    else this.ws.close(code, truncateReason(reason as string | Buffer))
  }
}

/**
 * Relays messages between a client and a backend WebSocket: text stays text, binary stays binary,
 * buffers pass untouched and in order. Close codes are mirrored (see `mirrorClose`), a leg whose
 * buffered bytes pass `highWaterMark` stops the other leg from being read until it drains (and a
 * client that stays backed up past `slowConsumerTimeout` is closed), the client's messages go
 * through its rate limit, and the gateway's heartbeat and idle timer can end both legs.
 *
 * This is the unit a per-message pipeline can be put in front of: `forward` is the only place a
 * message passes through.
 */
export class Relay implements Engine {
  readonly name = 'ws'
  readonly client: Leg
  readonly backend: Leg

  constructor (clientWs: WebSocket, backendWs: WebSocket, private readonly connection: RelayConnection) {
    this.client = new Leg('client', clientWs)
    this.backend = new Leg('backend', backendWs)
    this.attach(this.client, this.backend)
    this.attach(this.backend, this.client)
    // The backend leg was paused while the client's upgrade completed; what it sent meanwhile
    // is read now, in order.
    backendWs.resume()
  }

  private attach (from: Leg, to: Leg): void {
    const onSent = (): void => this.drained(to, from)
    from.ws.on('message', (data: Buffer, isBinary: boolean) => this.forward(from, to, data, isBinary, onSent))
    // Pings are answered here rather than by ws (see `pinged`); the backend's WebSocket was opened
    // with `autoPong: false`.
    if (from === this.client) answerPingsYourself(from.ws)
    from.ws.on('ping', (data: Buffer) => this.pinged(from, data))
    from.ws.on('pong', (data: Buffer) => {
      if (this.admitControl(from, data)) from.alive = true
    })
    // ws closes a leg that sent too big a message with a bare 1009; the passthrough engine and
    // the README give the reason too.
    onFrameTooBig(from.ws, () => from.close(CloseCode.MESSAGE_TOO_BIG, 'message too big'))
    from.ws.on('error', (err: Error & { code?: string }) => {
      if (err.code?.startsWith('WS_ERR_') === true) from.violation = err.code
      this.connection.settings.log.debug({ err, leg: from.name }, 'ws gateway leg error')
    })
    from.ws.on('close', (code: number, reason: Buffer) => this.closed(from, to, code, reason))
  }

  /** Sends one message on to the other leg and pauses the sender if the receiver is backed up. */
  private forward (from: Leg, to: Leg, data: Buffer, isBinary: boolean, onSent: () => void): void {
    // Once the other leg is closing nothing more can reach it; reading on lets this leg's own
    // close handshake finish.
    if (to.ws.readyState !== to.ws.OPEN) return
    if (from === this.client && !this.admitMessage(data)) return
    from.traffic.frames++
    from.traffic.bytes += data.length
    this.connection.active()
    to.ws.send(data, { binary: isBinary }, onSent)
    if (!from.paused && to.ws.bufferedAmount > this.connection.settings.highWaterMark) {
      from.paused = true
      from.ws.pause()
      if (to === this.client) this.connection.clientBackedUp()
    }
  }

  /**
   * The rate limit on a client message (ws itself enforces `maxPayload` on both legs). False when
   * the message must not be forwarded.
   */
  private admitMessage (data: Buffer): boolean {
    return this.connection.admit(1, data.length)
  }

  /** A ping or pong from `leg`: the client's count toward its rate limit; none is heeded after our close. */
  private admitControl (leg: Leg, data: Buffer): boolean {
    return (leg === this.backend || this.connection.admit(1, data.length)) && leg.ws.readyState === leg.ws.OPEN
  }

  /**
   * Answers a ping. One pong is written at a time; a ping that comes while it is replaces the one
   * waiting, so only the latest is answered (RFC 6455 §5.5.3): a peer that pings without reading
   * holds at most two pongs here, as with the passthrough engine.
   */
  private pinged (leg: Leg, data: Buffer): void {
    if (!this.admitControl(leg, data)) return
    if (leg.ponging) leg.nextPong = data
    else this.pong(leg, data)
  }

  private pong (leg: Leg, data: Buffer): void {
    leg.ponging = true
    leg.ws.pong(data, undefined, () => {
      leg.ponging = false
      const next = leg.nextPong
      leg.nextPong = undefined
      if (next !== undefined && leg.ws.readyState === leg.ws.OPEN) this.pong(leg, next)
    })
  }

  /** After a write on `to` completes: reads `from` again once `to` is down to half its limit. */
  private drained (to: Leg, from: Leg): void {
    if (from.paused && to.ws.bufferedAmount <= this.connection.settings.highWaterMark / 2) {
      from.paused = false
      from.ws.resume()
      // Only the client catching up ends its slow-consumer grace period, not the backend.
      if (to === this.client) this.connection.clientCaughtUp()
    }
  }

  /** One leg has closed: close the other the way the table in the README says, then finish. */
  private closed (leg: Leg, other: Leg, code: number, reason: Buffer): void {
    leg.code = code
    if (other.code === undefined) {
      if (other.planned !== undefined) other.close(other.planned.code, other.planned.reason)
      else this.mirrorClose(leg, other, code, reason)
      return
    }
    this.connection.finish()
  }

  private mirrorClose (leg: Leg, other: Leg, code: number, reason: Buffer): void {
    // ws already told a violator why (1002, 1007, 1009…); the table says what the other side hears.
    const violation = leg.violation === undefined ? undefined : leg.violation === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH' ? 'too big' : 'other'
    const close = mirrorClose({ fromClient: leg.name === 'client', violation, code, reason })
    if (close === 'cut') other.ws.terminate()
    else other.close(close.code, close.reason)
  }

  closeLeg (leg: Leg, code: number | undefined, reason: string | Buffer): void {
    leg.close(code, reason)
  }

  push ({ data, binary }: Outgoing): void {
    const ws = this.client.ws
    if (ws.readyState !== ws.OPEN) throw new ConnectionGoneError()
    if (ws.bufferedAmount > this.connection.settings.highWaterMark) throw new ClientBufferFullError()
    // ws writes whole messages in order, so this one lands between the backend's.
    ws.send(data, { binary })
  }

  /** Ends both legs at once, without a close handshake (the last step of a shutdown). */
  terminate (): void {
    this.client.ws.terminate()
    this.backend.ws.terminate()
  }

  cut (leg: Leg): void {
    leg.ws.terminate()
  }

  /** One heartbeat tick: a leg that did not answer the last ping is terminated, the rest pinged. */
  heartbeat (): void {
    for (const leg of [this.client, this.backend]) {
      if (!leg.alive) {
        this.connection.settings.log.debug({ leg: leg.name }, 'ws gateway leg missed a heartbeat')
        leg.ws.terminate()
        continue
      }
      leg.alive = false
      leg.ws.ping()
    }
  }
}
