import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Duplex } from 'node:stream'
import type { WebSocket } from 'ws'
import '@fastify/websocket'
import { callApp } from '../callbacks'
import { AuthorizeFailedError, ForbiddenError, KeysUnavailableError, OriginForbiddenError, ShuttingDownError } from '../errors'
import type { PathMetrics } from '../metrics/metrics'
import type { ResolvedOptions } from '../options/types'
import type { GatewayNode } from '../registry/decorator'
import { newConnectionId } from '../registry/ids'
import { relayMember } from '../registry/member'
import type { Registry } from '../registry/registry'
import { startRelay } from '../relay/engine'
import type { Backend, BackendTable } from '../upstream/backends'
import { connectBackend as connectPool, type PooledUpstream } from '../upstream/failover'
import { closeAtExpiry } from './auth/expiry'
import { authenticate, tokenOf, type TokenClaims, type TokenVerifier } from './auth/token'
import { backendIdOf } from './backend-id'
import { checkHandshake, protocolOffer, type ProtocolOffer } from './checks'
import { ConnectionLimits, retryLater, type Slot } from './limits'
import { routeSerializers } from './log'
import { kConnectionId, kProtocol, type GatewayMessage } from './protocols'

/** What the preValidation hooks learn about an upgrade, for the next hook and the handler. */
interface Handshake {
  /** The connection's id: sent to the backend and in the 101, and its name in the registry API. */
  id: string
  /** The client's upgrade socket (a stream, not a net.Socket, under `injectWS`). */
  socket: Duplex
  offer: ProtocolOffer
  slot: Slot
  backend?: Backend
  upstream?: PooledUpstream
  /** Seconds from the upgrade request to the backend's acceptance. */
  seconds?: number
}

interface RouteSettings {
  opts: ResolvedOptions
  registry: Registry
  node: GatewayNode
  backends: BackendTable
  verifier: TokenVerifier
  metrics: PathMetrics | undefined
}

/** The token's `sub`, when it has one (limits, logs, `hash-sub` balancing). */
function subjectOf (request: FastifyRequest): string | undefined {
  const sub = (request.user as { sub?: unknown }).sub
  return typeof sub === 'string' ? sub : undefined
}

/**
 * Adds the gateway's WebSocket route. Everything that can refuse a client runs in preValidation,
 * in this order, so the client gets an HTTP status and never a 101 it cannot use: handshake
 * checks, origin, token, backend ID, `authorize`, the backend lookup, and finally the backend
 * connection itself. `authorize` runs before the lookup so that a client learns nothing about
 * IDs it may not use (403 whether or not they exist) and cannot make `resolveBackend` run for them.
 */
export function addGatewayRoute (fastify: FastifyInstance, { opts, registry, node, backends, verifier, metrics }: RouteSettings): void {
  const handshakes = new WeakMap<FastifyRequest, Handshake>()
  const limits = new ConnectionLimits(opts)
  const { maxPayload, highWaterMark, idleTimeout, slowConsumerTimeout, slowConsumerCloseCode, rateLimit } = opts
  const relaySettings = { maxPayload, highWaterMark, idleTimeout, slowConsumerTimeout, slowConsumerCloseCode, rateLimit }

  async function checkRequest (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    // Checked first: once @fastify/websocket's own preClose has run, upgrades arrive as plain GETs.
    if (registry.closing) retryLater(reply, opts.retryAfter, new ShuttingDownError())
    checkHandshake(request, reply)
    const origin = request.headers.origin
    const { isOriginAllowed } = opts
    if (origin !== undefined && isOriginAllowed !== undefined && !callApp(request, 'allowedOrigins', () => isOriginAllowed(origin, request))) {
      throw new OriginForbiddenError()
    }
    // The slot is held until the client's socket closes, whichever way the upgrade ends.
    // @fastify/websocket gives the reply the upgrade socket; `request.raw` has none under injectWS.
    const socket = reply.raw.socket as Duplex
    const slot = limits.admit(request.ip ?? '', reply)
    socket.once('close', () => slot.release())
    handshakes.set(request, { id: newConnectionId(node.id), socket, offer: protocolOffer(request, opts.tokenProtocol), slot })
  }

  async function checkToken (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    reply.header('www-authenticate', 'Bearer')
    const { offer, slot } = handshakes.get(request) as Handshake
    const claims = await authenticate(request, verifier.verify, tokenOf(request, opts, offer.token)).catch((err: Error) => {
      if (!(err instanceof KeysUnavailableError)) throw err
      // Not the client's fault: no challenge, a time to come back, and the cause in the log.
      reply.removeHeader('www-authenticate')
      request.log.warn({ err: err.cause }, 'ws gateway could not fetch the token signing keys')
      retryLater(reply, opts.retryAfter, err)
    })
    reply.removeHeader('www-authenticate')
    if (typeof claims.sub === 'string') limits.admitSubject(slot, claims.sub, reply)
  }

  async function resolveBackend (request: FastifyRequest): Promise<void> {
    const id = backendIdOf(request, opts)
    const { authorize } = opts
    if (authorize !== undefined && !(await callApp(request, 'authorize', async () => await authorize(request, id), () => new AuthorizeFailedError()))) {
      throw new ForbiddenError()
    }
    const handshake = handshakes.get(request) as Handshake
    handshake.backend = await backends.find(request, id)
  }

  async function connectBackend (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const handshake = handshakes.get(request) as Handshake
    const { id, offer, socket } = handshake
    handshake.upstream = await connectPool(request, opts, handshake.backend as Backend, { client: socket, offered: offer.protocols, connectionId: id }, subjectOf(request))
    handshake.seconds = reply.elapsedTime / 1000
    // A browser that sent its token as a subprotocol fails the handshake unless one protocol is
    // selected: when the backend chose none, the marker is — never the token.
    const marker = offer.token !== undefined ? opts.tokenProtocol : false
    const raw = request.raw as GatewayMessage
    raw[kProtocol] = handshake.upstream.protocol ?? marker
    raw[kConnectionId] = id
  }

  function relay (this: FastifyInstance, socket: WebSocket, request: FastifyRequest): void {
    const handshake = handshakes.get(request) as Required<Handshake>
    const { id, backend, upstream } = handshake
    // The relay owns both sockets from here: @fastify/websocket's own error handler (which logs a
    // peer's disconnect as an error) and its shutdown (which closes without a code) are taken off.
    // The app's server may run without client tracking (`clientTracking: false`; the gateway's own does).
    socket.removeAllListeners('error')
    ;(this.websocketServer.clients as Set<WebSocket> | undefined)?.delete(socket)
    const sub = subjectOf(request)
    const log = request.log
    const backendId = backend.config.id
    const backendWs = upstream.adopt()
    const connection = startRelay(opts.engine, socket, backendWs, {
      ...relaySettings,
      backendMaxPayload: backend.config.maxPayload,
      log,
      onEnd (ended) {
        cancelExpiry?.()
        upstream.release()
        registry.remove(ended)
        node.leave(member)
        metrics?.closed(backendId, ended)
        log.info({
          backendId,
          sub,
          clientCode: ended.client.code,
          backendCode: ended.backend.code,
          connectionId: id,
          durationMs: Date.now() - ended.openedAt,
          fromClient: ended.client.traffic,
          fromBackend: ended.backend.traffic,
          dropped: ended.dropped
        }, 'ws gateway connection closed')
      }
    })
    const cancelExpiry = opts.closeOnTokenExpiry ? closeAtExpiry(connection, request.user as TokenClaims, verifier.clockTolerance) : undefined
    const member = relayMember(connection, {
      id,
      path: request.routeOptions.url as string,
      backendId,
      sub,
      sourceIp: request.ip,
      userAgent: request.headers['user-agent'],
      maxPayload: opts.maxPayload
    })
    registry.add(connection, backendId)
    node.join(member)
    metrics?.accepted(backendId, handshake.seconds)
    log.info({ connectionId: id, backendId, sub, protocol: upstream.protocol, engine: connection.engineName }, 'ws gateway connection open')
  }

  fastify.route({
    method: 'GET',
    url: opts.path,
    websocket: true,
    preValidation: [checkRequest, checkToken, resolveBackend, connectBackend],
    logSerializers: routeSerializers(opts),
    onError: async (request, _reply, error) => {
      const code = error.code ?? 'INTERNAL'
      registry.reject(code)
      metrics?.refused(handshakes.get(request)?.backend?.config.id ?? '', code, error.statusCode)
    },
    handler: relay
  })
}
