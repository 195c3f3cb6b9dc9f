import WebSocket from 'ws'
import { BadGatewayError } from '../../errors'
import type { GatewayConnection, ResolvedWsTarget } from '../../options/message-types'
import { truncateReason } from '../../relay/close-codes'
import { backendHeaders } from './headers'
import type { Backend, Session, UpstreamHandle } from './types'

/**
 * One client connection's upstream for one WebSocket route. What the upstream sends goes to the
 * client (`session.upstreamMessage`); when it closes or fails on its own after opening, the client gets one
 * `BAD_GATEWAY` frame for the route (`session.upstreamFailed`) and the next message opens a new one.
 */
class Upstream implements UpstreamHandle {
  readonly socket: WebSocket
  /** Settles once the upstream is open, or rejects with `BAD_GATEWAY`. */
  readonly opened: Promise<void>
  private closing = false
  private alive = true

  constructor (target: ResolvedWsTarget, private readonly route: string, connection: GatewayConnection, maxPayload: number, private readonly session: Session) {
    this.socket = new WebSocket(target.url, {
      ...target.tls,
      headers: backendHeaders(target.headers, connection, route),
      perMessageDeflate: false,
      maxPayload,
      followRedirects: false
    })
    const log = connection.request.log
    this.socket.on('error', (err) => log.debug({ err, route }, 'ws gateway upstream error'))
    // Listening from the start: a message sent the instant the upstream opens can arrive with its
    // handshake answer and be emitted before a listener added on 'open' would be.
    this.socket.on('message', (data: Buffer, isBinary: boolean) => this.session.upstreamMessage(this.route, data, isBinary))
    this.socket.on('pong', () => { this.alive = true })
    let open = false
    this.socket.on('close', () => {
      if (!open || this.closing) return
      this.session.upstreams.delete(this.route)
      this.session.upstreamFailed(this.route)
    })
    this.opened = new Promise((resolve, reject) => {
      this.socket.once('open', () => { open = true; resolve() })
      this.socket.once('unexpected-response', (_req, res) => {
        res.resume()
        log.warn({ route, status: res.statusCode }, 'ws gateway upstream refused the handshake')
        this.socket.terminate()
      })
      this.socket.once('close', () => {
        if (!this.closing) log.warn({ route }, 'ws gateway upstream unreachable')
        reject(new BadGatewayError())
      })
    })
    this.opened.catch(() => {})
  }

  close (code?: number, reason: string | Buffer = ''): void {
    this.closing = true
    if (this.socket.readyState !== WebSocket.OPEN) return this.socket.terminate()
    this.socket.resume()
    // No code: ws sends a close frame without a status and ignores the reason.
    this.socket.close(code, truncateReason(reason))
  }

  terminate (): void {
    this.closing = true
    this.socket.terminate()
  }

  heartbeat (): void {
    if (this.socket.readyState !== WebSocket.OPEN) return
    if (!this.alive) return this.socket.terminate()
    this.alive = false
    this.socket.ping()
  }

  pause (): void {
    this.socket.pause()
  }

  resume (): void {
    this.socket.resume()
  }
}

/**
 * A WebSocket route: one upstream per client connection, opened on the route's first message
 * (with the identity headers, see `backendHeaders`) and closed with the client. Each message goes
 * out as it came; there is no reply — what the upstream sends comes back as `message` frames. A
 * request that times out while its upstream opens takes the half-open upstream down with it.
 */
export function wsBackend (target: ResolvedWsTarget, maxPayload: number): Backend {
  return async (request) => {
    const { session, route, signal } = request
    let upstream = session.upstreams.get(route) as Upstream | undefined
    if (upstream === undefined) {
      upstream = new Upstream(target, route, request.connection, maxPayload, session)
      session.upstreams.set(route, upstream)
      const opening = upstream
      const onAbort = (): void => {
        if (session.upstreams.get(route) === opening) session.upstreams.delete(route)
        opening.terminate()
      }
      signal.once('abort', onAbort)
      opening.opened.then(() => signal.removeListener('abort', onAbort), () => {
        if (session.upstreams.get(route) === opening) session.upstreams.delete(route)
      })
    }
    await signal.race(upstream.opened)
    const socket = upstream.socket
    // In flight until written: an upstream that does not read holds the request (and, at the
    // in-flight cap, the client) until the timeout.
    await signal.race(new Promise<void>((resolve, reject) => {
      socket.send(request.body, (err) => {
        /* c8 ignore next -- ws fails a send only when the upstream closed between its open and this send: a race no test can pin down */
        if (err !== undefined && err !== null) return reject(new BadGatewayError())
        resolve()
      })
    }))
    return undefined
  }
}
