import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { WebSocket } from 'ws'
import '@fastify/websocket'
import { callApp } from '../callbacks'
import { AuthorizeFailedError, ForbiddenError, OriginForbiddenError, ShuttingDownError } from '../errors'
import { CONNECT_KEY } from '../messages/hooks'
import type { MessageRouter } from '../messages/router'
import { startMessages } from '../messages/start'
import type { PathMetrics } from '../metrics/metrics'
import type { GatewayConnection } from '../options/message-types'
import type { ResolvedOptions } from '../options/types'
import type { GatewayNode } from '../registry/decorator'
import { newConnectionId } from '../registry/ids'
import { relayMember } from '../registry/member'
import type { Registry } from '../registry/registry'
import { relaySettings } from '../relay/connection'
import { startRawRelay, startRelay } from '../relay/engine'
import { isRaw, type RawLeg } from '../relay/passthrough/relay'
import type { Connection } from '../relay/types'
import type { Backend, BackendTable } from '../upstream/backends'
import { connectBackend as connectPool, type PooledUpstream } from '../upstream/failover'
import { TokenExpiries } from './auth/expiry'
import { tokenCheck } from './auth/check'
import type { TokenClaims, TokenVerifier } from './auth/token'
import { backendIdOf } from './backend-id'
import { checkHandshake, protocolOffer, type ProtocolOffer } from './checks'
import { ConnectionLimits, retryLater, type Slot } from './limits'
import { routeSerializers } from './log'
import { kConnectionId, kProtocol, type GatewayMessage } from './protocols'
import { takeSocket, takesRawSockets, writeUpgrade } from './upgrade'

/** What the preValidation hooks learn about an upgrade, for the next hook and the handler. */
interface Handshake {
  /** The connection's id: sent to the backend and in the 101, and its name in the registry API. */
  id: string
  /** The client's upgrade socket (a stream, not a net.Socket, under `injectWS`). */
  socket: Duplex
  offer: ProtocolOffer
  slot: Slot
  token?: string
  backend?: Backend
  upstream?: PooledUpstream
  /** The raw path (see upgrade.ts): the bytes the client sent past its upgrade request. */
  head?: Buffer
  /** Seconds from the upgrade request to the backend's acceptance. */
  seconds?: number
  /** Message mode: the connection as hooks and backends see it. */
  identity?: GatewayConnection
}

interface RouteSettings {
  opts: ResolvedOptions
  registry: Registry
  node: GatewayNode
  backends: BackendTable
  verifier: TokenVerifier
  /** Message mode's routes; undefined in relay mode. */
  router?: MessageRouter
  metrics: PathMetrics | undefined
}

/** The token's `sub`, when it has one (limits, logs, `hash-sub` balancing). */
function subjectOf (request: FastifyRequest): string | undefined {
  const sub = (request.user as { sub?: unknown }).sub
  return typeof sub === 'string' ? sub : undefined
}

/**
 * Frees the slot when the client's socket closes. A function of its own so that the listener,
 * which lives as long as the connection, keeps only these two alive — a closure made inside a
 * hook would share its scope, and so keep the whole request.
 */
function releaseOnClose (socket: Duplex, slot: Slot): void {
  // `on`, not `once`: 'close' comes once, and `once` would add a wrapper and its state per connection.
  socket.on('close', () => slot.release())
}

/**
 * Adds the gateway's WebSocket route. Everything that can refuse a client runs in preValidation,
 * in this order, so the client gets an HTTP status and never a 101 it cannot use: handshake
 * checks, origin, token, then in relay mode backend ID, `authorize`, the backend lookup, and
 * finally the backend connection itself; in message mode `authorize` (with `'$connect'`) and the
 * `connect` hook. `authorize` runs before the lookup so that a client learns nothing about IDs it
 * may not use (403 whether or not they exist) and cannot make `resolveBackend` run for them.
 */
export function addGatewayRoute (fastify: FastifyInstance, { opts, registry, node, backends, verifier, metrics, router }: RouteSettings): void {
  const handshakes = new WeakMap<FastifyRequest, Handshake>()
  const limits = new ConnectionLimits(opts)
  const expiries = new TokenExpiries()
  const checkToken = tokenCheck(opts, verifier, limits)
  const { maxPayload, highWaterMark, idleTimeout, slowConsumerTimeout, slowConsumerCloseCode, rateLimit } = opts
  const routeSettings = { maxPayload, highWaterMark, idleTimeout, slowConsumerTimeout, slowConsumerCloseCode, rateLimit }

  /** The synchronous checks, first; returns what the next steps learn about the upgrade. */
  function checkRequest (request: FastifyRequest, reply: FastifyReply): Handshake {
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
    releaseOnClose(socket, slot)
    const handshake: Handshake = { id: newConnectionId(node.id), socket, offer: protocolOffer(request, opts.tokenProtocol), slot }
    handshakes.set(request, handshake)
    return handshake
  }

  /** `authorize(request, id)`, when set: false (or a throw, as 500) refuses the client. */
  async function checkAuthorized (request: FastifyRequest, id: string): Promise<void> {
    const { authorize } = opts
    if (authorize !== undefined && !(await callApp(request, 'authorize', async () => await authorize(request, id), () => new AuthorizeFailedError()))) {
      throw new ForbiddenError()
    }
  }

  async function resolveBackend (request: FastifyRequest, handshake: Handshake): Promise<void> {
    const id = backendIdOf(request, opts)
    // Each await costs a tick: none where there is nothing to wait for (no `authorize`, a configured ID).
    if (opts.authorize !== undefined) await checkAuthorized(request, id)
    handshake.backend = backends.known(id) ?? await backends.resolve(request, id)
  }

  async function connectMessages (request: FastifyRequest, handshake: Handshake): Promise<void> {
    await checkAuthorized(request, CONNECT_KEY)
    const user = request.user as TokenClaims
    const identity = Object.freeze({
      id: handshake.id,
      user,
      sub: typeof user.sub === 'string' ? user.sub : undefined,
      token: handshake.token as string,
      request
    })
    await (router as MessageRouter).connect(identity, request, handshake.socket)
    handshake.identity = identity
    // No backend chooses a subprotocol here: none, or the marker a browser's token came with.
    const raw = request.raw as GatewayMessage
    raw[kProtocol] = handshake.offer.token !== undefined ? opts.tokenProtocol : false
    raw[kConnectionId] = handshake.id
  }

  async function connectBackend (server: FastifyInstance, request: FastifyRequest, reply: FastifyReply, handshake: Handshake): Promise<void> {
    const { id, offer, socket } = handshake
    const backend = handshake.backend as Backend
    handshake.head = takesRawSockets(request, socket, server.websocketServer, opts, backend.config)
    handshake.upstream = await connectPool(request, opts, backend, { client: socket, offered: offer.protocols, connectionId: id, raw: handshake.head !== undefined }, subjectOf(request))
    handshake.seconds = reply.elapsedTime / 1000
    // A browser that sent its token as a subprotocol fails the handshake unless one protocol is
    // selected: when the backend chose none, the marker is — never the token.
    const marker = offer.token !== undefined ? opts.tokenProtocol : false
    const raw = request.raw as GatewayMessage
    raw[kProtocol] = handshake.upstream.protocol ?? marker
    raw[kConnectionId] = id
  }

  /**
   * The route's one preValidation hook, each step in turn (one hook rather than one per step: an
   * async hook costs a promise and a tick of Fastify's hook runner, and nothing runs in between).
   */
  async function openRelay (this: FastifyInstance, request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const handshake = checkRequest(request, reply)
    const verifying = checkToken(request, reply, handshake)
    if (verifying !== undefined) await verifying
    await resolveBackend(request, handshake)
    await connectBackend(this, request, reply, handshake)
  }

  /** Message mode's preValidation hook: as `openRelay`, with the `connect` hook for the backend. */
  async function openMessages (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const handshake = checkRequest(request, reply)
    await checkToken(request, reply, handshake)
    await connectMessages(request, handshake)
  }

  /** The socket is the gateway's from here: @fastify/websocket's own error handler (which logs a
   * peer's disconnect as an error) and its shutdown (which closes without a code) are taken off.
   * The app's server may run without client tracking (`clientTracking: false`; the gateway's own does). */
  function adopt (server: FastifyInstance, socket: WebSocket): void {
    socket.removeAllListeners('error')
    ;(server.websocketServer.clients as Set<WebSocket> | undefined)?.delete(socket)
  }

  /**
   * Makes an open connection reachable (the registry API, stats, heartbeat) and closes it when
   * its token expires; `onEnd` undoes it. Returns what the connection's `onEnd` must call.
   */
  function track (request: FastifyRequest, connection: Connection, id: string, backendId: string | undefined): () => void {
    const expiry = opts.closeOnTokenExpiry ? expiries.closeAtExpiry(connection, request.user as TokenClaims, verifier.clockTolerance) : undefined
    const member = relayMember(connection, {
      id,
      path: request.routeOptions.url as string,
      backendId,
      sub: subjectOf(request),
      sourceIp: request.ip,
      userAgent: request.headers['user-agent'],
      maxPayload: opts.maxPayload
    })
    // Message mode has no backend: its connections are counted under `$messages`.
    registry.add(connection, backendId ?? '$messages')
    node.join(member)
    return () => {
      if (expiry !== undefined) expiries.delete(expiry)
      registry.remove(connection)
      node.leave(member)
    }
  }

  /** The handler: ws completed the upgrade (the ws path). */
  function relay (this: FastifyInstance, socket: WebSocket, request: FastifyRequest): void {
    adopt(this, socket)
    begin(request, socket)
  }

  /**
   * The last step before the handler, after the app's own preHandler hooks: on the raw path the
   * gateway writes the client's 101 itself and takes the reply over, so that @fastify/websocket
   * (whose handler would upgrade through ws) never sees the request. On the ws path it does nothing.
   */
  async function upgradeRaw (this: FastifyInstance, request: FastifyRequest, reply: FastifyReply): Promise<void> {
    const handshake = handshakes.get(request) as Handshake
    const { head } = handshake
    if (head === undefined) return
    // As ws answers once its server is closing (the gateway's own shutdown has begun).
    if (registry.closing) retryLater(reply, opts.retryAfter, new ShuttingDownError())
    const socket = handshake.socket as Socket
    reply.hijack()
    if (!writeUpgrade(this.websocketServer, request, socket)) return
    takeSocket(reply, socket)
    begin(request, { socket, head })
  }

  /** Starts relaying an upgraded client (a ws WebSocket, or on the raw path its socket) to its backend. */
  function begin (request: FastifyRequest, client: WebSocket | RawLeg): void {
    const handshake = handshakes.get(request) as Required<Handshake>
    const { id, backend, upstream } = handshake
    const sub = subjectOf(request)
    const log = request.log
    const backendId = backend.config.id
    const backendLeg = upstream.adopt()
    // onEnd lives as long as the connection: it keeps the pool's release, not the upstream (and
    // with it, on the ws path, the backend's ws objects, which the passthrough engine no longer needs).
    const { release } = upstream
    const onEnd = (ended: Connection): void => {
      untrack()
      release()
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
    const settings = relaySettings(routeSettings, backend.config.maxPayload, log, onEnd)
    // Both legs take the same path (`takesRawSockets` decided before the backend was opened).
    const raw = isRaw(client)
    const connection = raw
      ? startRawRelay(client, backendLeg as RawLeg, settings)
      : startRelay(opts.engine, client, backendLeg as WebSocket, settings)
    const untrack = track(request, connection, id, backendId)
    metrics?.accepted(backendId, handshake.seconds)
    log.info({ connectionId: id, backendId, sub, protocol: upstream.protocol, engine: connection.engineName, upgradedBy: raw ? 'gateway' : 'ws' }, 'ws gateway connection open')
  }

  function messages (this: FastifyInstance, socket: WebSocket, request: FastifyRequest): void {
    const identity = (handshakes.get(request) as Handshake).identity as GatewayConnection
    adopt(this, socket)
    const connection = startMessages(socket, router as MessageRouter, identity, relaySettings(routeSettings, opts.maxPayload, request.log, () => untrack()))
    const untrack = track(request, connection, identity.id, undefined)
    request.log.info({ connectionId: identity.id, sub: identity.sub }, 'ws gateway connection open')
  }

  fastify.route({
    method: 'GET',
    url: opts.path,
    websocket: true,
    preValidation: router === undefined ? openRelay : openMessages,
    preHandler: router === undefined ? upgradeRaw : undefined,
    // Message mode compiles its message schemas with this context's validator compiler, which
    // Fastify sets up for a route with a schema: an always-true one, when nothing set it up yet.
    schema: router !== undefined && fastify.validatorCompiler === undefined ? { querystring: { type: 'object' } } : undefined,
    logSerializers: routeSerializers(opts),
    onError: async (request, _reply, error) => {
      const code = error.code ?? 'INTERNAL'
      registry.reject(code)
      metrics?.refused(handshakes.get(request)?.backend?.config.id ?? '', code, error.statusCode)
    },
    handler: router === undefined ? relay : messages
  })
}
