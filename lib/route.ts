import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify'
import type { WebSocket, WebSocketServer } from 'ws'
import type { IncomingMessage } from 'node:http'
import '@fastify/websocket'
import { authenticate, tokenOf, type TokenClaims, type VerifyToken } from './auth'
import { backendIdOf, findBackend } from './backends'
import { AuthorizeFailedError, ForbiddenError, OriginForbiddenError, ShuttingDownError } from './errors'
import { checkHandshake, protocolOffer, redactingRequestSerializer, type ProtocolOffer } from './handshake'
import type { ResolvedBackend, ResolvedOptions } from './options'
import type { Registry } from './registry'
import { ConnectionLimits, retryLater, type Slot } from './limits'
import { FrameRelay } from './frame-relay'
import { canAdopt } from './frame-leg'
import { Relay, type Connection } from './relay'
import { CloseCode } from './close-codes'
import { openUpstream, type Upstream } from './upstream'

/** What the preValidation hooks learn about an upgrade, for the next hook and the handler. */
interface Handshake {
  offer: ProtocolOffer
  slot: Slot
  backend?: ResolvedBackend
  upstream?: Upstream
}

/** Where the backend's chosen subprotocol waits for the client's upgrade (see `chooseProtocols`). */
const kProtocol = Symbol('fastify-ws-gateway.protocol')
const kChoosesProtocols = Symbol('fastify-ws-gateway.choosesProtocols')
type GatewayMessage = IncomingMessage & { [kProtocol]?: string | false }

/**
 * Makes the shared WebSocket server answer a gateway upgrade with the subprotocol the backend
 * chose — or none, when it chose none — instead of ws's default (the client's first offer).
 * Upgrades of the app's other WebSocket routes keep the app's own `handleProtocols`.
 */
export function chooseProtocols (wss: WebSocketServer & { [kChoosesProtocols]?: true }): void {
  if (wss[kChoosesProtocols] === true) return
  wss[kChoosesProtocols] = true
  const previous = wss.options.handleProtocols
  wss.options.handleProtocols = (protocols: Set<string>, req: GatewayMessage) => {
    if (kProtocol in req) return req[kProtocol] as string | false
    // ws defaults the option to null, and then picks the first offer (it asks only when offered).
    return typeof previous === 'function' ? previous(protocols, req) : protocols.values().next().value as string
  }
}

/** Runs the app's `authorize`; if it throws, that is logged and answered 500 without its text. */
async function isAuthorized (request: FastifyRequest, id: string, authorize: NonNullable<ResolvedOptions['authorize']>): Promise<boolean> {
  try {
    return await authorize(request, id)
  } catch (err) {
    request.log.error({ err, backendId: id }, 'ws gateway authorize failed')
    throw new AuthorizeFailedError()
  }
}

/** Node timers overflow past this many milliseconds (about 24.8 days) and fire at once. */
const MAX_TIMER_DELAY = 2 ** 31 - 1

/** Closes a connection with 1008 `token expired` when its token's `exp` passes. */
function closeAtExpiry (connection: Connection, claims: TokenClaims): NodeJS.Timeout | undefined {
  const delay = claims.exp * 1000 - Date.now()
  if (delay > MAX_TIMER_DELAY) return undefined
  return setTimeout(() => connection.end(CloseCode.POLICY, 'token expired'), Math.max(0, delay)).unref()
}

interface RouteSettings {
  opts: ResolvedOptions
  registry: Registry
  verify: VerifyToken
}

/**
 * Adds the gateway's WebSocket route. Everything that can refuse a client runs in preValidation,
 * in this order, so the client gets an HTTP status and never a 101 it cannot use: handshake
 * checks, origin, token, backend ID, `authorize`, and finally the backend connection itself.
 */
export function addGatewayRoute (fastify: FastifyInstance, { opts, registry, verify }: RouteSettings): void {
  const handshakes = new WeakMap<FastifyRequest, Handshake>()
  const limits = new ConnectionLimits(opts)
  const { maxPayload, highWaterMark, idleTimeout, slowConsumerTimeout, slowConsumerCloseCode, rateLimit } = opts
  const relaySettings = { maxPayload, highWaterMark, idleTimeout, slowConsumerTimeout, slowConsumerCloseCode, rateLimit }

  async function checkRequest (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    // Checked first: once @fastify/websocket's own preClose has run, upgrades arrive as plain GETs.
    if (registry.closing) retryLater(reply, opts.retryAfter, new ShuttingDownError())
    checkHandshake(request, reply)
    const origin = request.headers.origin
    if (origin !== undefined && opts.isOriginAllowed !== undefined && !opts.isOriginAllowed(origin, request)) {
      throw new OriginForbiddenError()
    }
    // The slot is held until the client's socket closes, whichever way the upgrade ends.
    const slot = limits.admit(request.ip, reply)
    request.raw.socket.once('close', () => slot.release())
    handshakes.set(request, { offer: protocolOffer(request, opts.tokenProtocol), slot })
  }

  async function checkToken (request: FastifyRequest, reply: FastifyReply): Promise<void> {
    reply.header('www-authenticate', 'Bearer')
    const { offer, slot } = handshakes.get(request) as Handshake
    const claims = await authenticate(request, verify, tokenOf(request, opts, offer.token))
    reply.removeHeader('www-authenticate')
    if (typeof claims.sub === 'string') limits.admitSubject(slot, claims.sub, reply)
  }

  async function resolveBackend (request: FastifyRequest): Promise<void> {
    const id = backendIdOf(request, opts)
    const backend = await findBackend(request, id, opts)
    if (opts.authorize !== undefined && !(await isAuthorized(request, id, opts.authorize))) throw new ForbiddenError()
    const handshake = handshakes.get(request) as Handshake
    handshake.backend = backend
  }

  async function connectBackend (request: FastifyRequest): Promise<void> {
    const handshake = handshakes.get(request) as Handshake
    const { offer } = handshake
    handshake.upstream = await openUpstream(request, handshake.backend as ResolvedBackend, opts, offer.protocols)
    // A browser that sent its token as a subprotocol fails the handshake unless one protocol is
    // selected: when the backend chose none, the marker is — never the token.
    const marker = offer.token !== undefined ? opts.tokenProtocol : false
    ;(request.raw as GatewayMessage)[kProtocol] = handshake.upstream.protocol ?? marker
  }

  function relay (this: FastifyInstance, socket: WebSocket, request: FastifyRequest): void {
    const { backend, upstream } = handshakes.get(request) as Required<Handshake>
    // The relay owns both sockets from here: @fastify/websocket's own error handler (which logs a
    // peer's disconnect as an error) and its shutdown (which closes without a code) are taken off.
    socket.removeAllListeners('error')
    this.websocketServer.clients.delete(socket)
    const sub = (request.user as { sub?: unknown } | undefined)?.sub
    const log = request.log
    const backendWs = upstream.adopt()
    // The passthrough engine relays frames as they are, so only legs without extensions (no
    // permessage-deflate) can use it; it also needs ws's internals as it knows them (`canAdopt`).
    const passthrough = opts.engine === 'passthrough' && socket.extensions === '' && backendWs.extensions === '' &&
      canAdopt(socket, backendWs)
    const Engine = passthrough ? FrameRelay : Relay
    const connection = new Engine(socket, backendWs, {
      ...relaySettings,
      log,
      onEnd (ended) {
        clearTimeout(expiryTimer)
        registry.remove(ended)
        log.info({
          backendId: backend.id,
          sub,
          clientCode: ended.client.code,
          backendCode: ended.backend.code,
          durationMs: Date.now() - ended.openedAt,
          fromClient: ended.client.traffic,
          fromBackend: ended.backend.traffic,
          dropped: ended.dropped
        }, 'ws gateway connection closed')
      }
    })
    const expiryTimer = opts.closeOnTokenExpiry ? closeAtExpiry(connection, request.user as TokenClaims) : undefined
    registry.add(connection)
    log.info({ backendId: backend.id, sub, protocol: upstream.protocol }, 'ws gateway connection open')
  }

  fastify.route({
    method: 'GET',
    url: opts.path,
    websocket: true,
    preValidation: [checkRequest, checkToken, resolveBackend, connectBackend],
    logSerializers: opts.tokenQuery === undefined ? undefined : { req: redactingRequestSerializer(opts.tokenQuery) },
    onError: async (_request, _reply, error) => { registry.reject(error.code ?? 'INTERNAL') },
    handler: relay
  })
}
