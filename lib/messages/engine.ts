import type WebSocket from 'ws'
import { BadGatewayError, ClientBufferFullError, ConnectionGoneError } from '../errors'
import type { GatewayConnection } from '../options/message-types'
import { CloseCode, mirrorClose, truncateReason } from '../relay/close-codes'
import type { RelayConnection } from '../relay/connection'
import type { RateLimiter } from '../relay/rate-limit'
import type { Outgoing } from '../registry/types'
import type { Engine, LegName, PlannedClose, PolicyLeg, Traffic } from '../relay/types'
import type { Session, UpstreamHandle } from './backends/types'
import { asJsonText, errorFrame, pushFrame } from './envelope'
import { handleMessage, kClientGone, type PipelineContext } from './pipeline'
import type { MessageRouter } from './router'
import type { RequestSignal } from './signal'

/** A leg as the connection's policy sees it; in message mode the backend leg is every backend call. */
class Leg implements PolicyLeg {
  readonly traffic: Traffic = { frames: 0, bytes: 0 }
  code: number | undefined
  planned: PlannedClose | undefined
  constructor (readonly name: LegName) {}
}

/**
 * Message mode's engine under the shared connection policy (`RelayConnection`: idle timer, rate
 * limit, slow consumer, policy closes): it reads the client's messages and runs each through the
 * pipeline, at most `maxInFlight` at a time, sending answers in completion order.
 *
 * Back-pressure: at `maxInFlight`, or while the client's unsent replies are over `highWaterMark`,
 * the client socket is paused — the kernel's buffers fill and the client's sends slow down. Only
 * what ws had already read from the socket when it was paused waits here (`backlog`), so that
 * queue is bounded by one socket read. A client over `highWaterMark` also pauses the upstreams of
 * its WebSocket routes.
 *
 * The backend "leg" is the set of backend calls and upstreams: closing it aborts every call (the
 * client is gone: counted as `clientGone`, never a backend failure) and closes the upstreams.
 */
export class MessageEngine implements Engine, Session {
  readonly name = 'messages' as const
  readonly client = new Leg('client')
  readonly backend = new Leg('backend')
  readonly upstreams = new Map<string, UpstreamHandle>()
  private readonly context: PipelineContext
  private readonly backlog: Buffer[] = []
  private inFlight = 0
  private readingPaused = false
  private backedUp = false
  private alive = true

  constructor (private readonly ws: WebSocket, private readonly connection: RelayConnection, private readonly router: MessageRouter, identity: GatewayConnection) {
    const log = identity.request.log
    this.context = { router, connection: identity, session: this, log, limiters: new Map<string, RateLimiter>(), requests: new Set() }
    ws.on('message', (data: Buffer) => this.received(data))
    ws.on('pong', () => { this.alive = true })
    ws.on('error', (err) => log.debug({ err }, 'ws gateway client error'))
    ws.on('close', (code: number, reason: Buffer) => this.closed(code, reason))
  }

  private received (data: Buffer): void {
    // After the gateway sent its close, the client's last messages are read (so its close frame
    // arrives) and charged to its rate limit (a client flooding on past a rate-limit close is
    // cut), but not handled: nobody could be answered.
    if (!this.connection.admit(1, data.length) || this.ws.readyState !== this.ws.OPEN) return
    this.client.traffic.frames++
    this.client.traffic.bytes += data.length
    this.connection.active()
    if (this.inFlight >= this.router.messages.maxInFlight) this.backlog.push(data)
    else this.dispatch(data)
    this.updateReading()
  }

  private dispatch (data: Buffer): void {
    this.inFlight++
    // handleMessage never rejects: every error it meets becomes an error frame.
    handleMessage(this.context, data).then((frame) => {
      if (frame !== undefined) this.send(frame)
      this.inFlight--
      while (this.inFlight < this.router.messages.maxInFlight && this.backlog.length > 0) this.dispatch(this.backlog.shift() as Buffer)
      this.updateReading()
    })
  }

  /** Pauses the client socket while the connection is at its in-flight cap or backed up. */
  private updateReading (): void {
    const pause = this.inFlight >= this.router.messages.maxInFlight || this.backedUp
    if (pause === this.readingPaused || this.ws.readyState !== this.ws.OPEN) return
    this.readingPaused = pause
    if (pause) this.ws.pause()
    else this.ws.resume()
  }

  private send (frame: string): void {
    if (this.ws.readyState !== this.ws.OPEN) return
    this.connection.active()
    this.ws.send(frame, () => this.sent())
    if (!this.backedUp && this.ws.bufferedAmount > this.connection.settings.highWaterMark) {
      this.backedUp = true
      for (const upstream of this.upstreams.values()) upstream.pause()
      this.connection.clientBackedUp()
      this.updateReading()
    }
  }

  /** After a write to the client: once it is down to half its limit, read again. */
  private sent (): void {
    if (this.backedUp && this.ws.bufferedAmount <= this.connection.settings.highWaterMark / 2) {
      this.backedUp = false
      for (const upstream of this.upstreams.values()) upstream.resume()
      this.connection.clientCaughtUp()
      this.updateReading()
    }
  }

  /** A WebSocket route's upstream sent something: to the client, as a `message` frame. */
  upstreamMessage (route: string, data: Buffer, isBinary: boolean): void {
    this.backend.traffic.frames++
    this.backend.traffic.bytes += data.length
    this.router.stats.pushed++
    const text = isBinary ? JSON.stringify(data.toString('base64')) : asJsonText(data.toString())
    this.send(pushFrame(route, text))
  }

  /**
   * A message of the gateway's own (the registry API's `send`): written as it is, between the
   * answers. Throws `ConnectionGoneError` once the client is closing, `ClientBufferFullError`
   * when more than `highWaterMark` bytes already wait for it.
   */
  push ({ data, binary }: Outgoing): void {
    if (this.ws.readyState !== this.ws.OPEN) throw new ConnectionGoneError()
    if (this.ws.bufferedAmount > this.connection.settings.highWaterMark) throw new ClientBufferFullError()
    this.ws.send(data, { binary })
  }

  /** A WebSocket route's upstream closed or failed on its own: one error frame for the route. */
  upstreamFailed (route: string): void {
    const err = new BadGatewayError()
    this.router.stats.errors[err.code] = (this.router.stats.errors[err.code] ?? 0) + 1
    this.send(errorFrame(null, route, err))
  }

  /** The client closed (or its connection ended): the backend calls end with it. */
  private closed (code: number, reason: Buffer): void {
    this.client.code = code
    const planned = this.backend.planned
    if (planned !== undefined) this.closeBackend(planned.code, planned.reason)
    else {
      const close = mirrorClose({ fromClient: true, violation: undefined, code, reason })
      if (close === 'cut') this.closeBackend(CloseCode.ABNORMAL, '')
      else this.closeBackend(close.code, close.reason)
    }
    this.backlog.length = 0
    this.connection.finish()
  }

  private closeBackend (code: number | undefined, reason: string | Buffer): void {
    if (this.backend.code !== undefined) return
    this.backend.code = code ?? CloseCode.NO_STATUS
    const requests = this.context.requests as Set<RequestSignal>
    this.context.requests = undefined
    for (const request of requests) request.abort(kClientGone)
    for (const upstream of this.upstreams.values()) {
      if (code === CloseCode.ABNORMAL) upstream.terminate()
      else upstream.close(code, reason)
    }
    this.upstreams.clear()
  }

  closeLeg (leg: Leg, code: number | undefined, reason: string | Buffer): void {
    if (leg === this.backend) return this.closeBackend(code, reason)
    if (this.ws.readyState !== this.ws.OPEN) return
    // The client's close frame queues behind what it still has to send: read on.
    if (this.readingPaused) this.ws.resume()
    // No code (1005): ws sends the close without a reason.
    this.ws.close(code, truncateReason(reason))
  }

  /** Cuts the client (the only leg with a connection of its own); its close ends the backend calls. */
  cut (_leg: PolicyLeg): void {
    this.ws.terminate()
  }

  terminate (): void {
    this.ws.terminate()
    for (const upstream of this.upstreams.values()) upstream.terminate()
  }

  heartbeat (): void {
    for (const upstream of this.upstreams.values()) upstream.heartbeat()
    if (!this.alive) {
      this.connection.settings.log.debug({ leg: 'client' }, 'ws gateway leg missed a heartbeat')
      this.ws.terminate()
      return
    }
    this.alive = false
    this.ws.ping()
  }
}
