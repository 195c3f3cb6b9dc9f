import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'
import fastifyCookie from '@fastify/cookie'
import fastifyJwt, { type JWT } from '@fastify/jwt'
import fastifyWebsocket from '@fastify/websocket'
import { jwtPluginOptions, type VerifyToken } from './auth'
import { InvalidOptionError } from './errors'
import { validateOptions, type ResolvedOptions, type WsGatewayOptions } from './options'
import { Registry, sumStats, type GatewayStats, type WsGatewayStats } from './registry'
import { addGatewayRoute, chooseProtocols } from './route'

export type { BackendConfig, BackendOption, BackendTlsOptions, UpstreamHeaders, WsGatewayOptions } from './options'
export type { GatewayStats, WsGatewayStats } from './registry'
export type { Traffic } from './relay'
export type { TokenClaims } from './auth'
export * as errors from './errors'
export { CloseCode } from './close-codes'

/** What the gateway adds to the Fastify instance as `fastify.wsGateway`. */
export interface WsGatewayDecorator {
  /** Connection, rejection and traffic counters, in total and per registered path. */
  stats: () => WsGatewayStats
}

declare module 'fastify' {
  interface FastifyInstance {
    wsGateway: WsGatewayDecorator
  }
}

/** The registries of every gateway registered on one app, by path. */
const kRegistries = Symbol('fastify-ws-gateway.registries')
type GatewayInstance = FastifyInstance & { [kRegistries]?: Map<string, Registry> }

/** @fastify/websocket, unless the app registered it already (its server is then shared). */
async function ensureWebsocket (fastify: FastifyInstance, opts: ResolvedOptions): Promise<void> {
  if (!fastify.hasDecorator('websocketServer')) {
    await fastify.register(fastifyWebsocket, { options: { maxPayload: opts.maxPayload, perMessageDeflate: false } })
  }
  chooseProtocols(fastify.websocketServer)
}

/**
 * The token verifier: a namespaced @fastify/jwt registration of the gateway's own when `jwt` is
 * given (so it never clashes with the app's), otherwise the app's own @fastify/jwt.
 */
async function tokenVerifier (fastify: FastifyInstance, opts: ResolvedOptions, namespace: string): Promise<VerifyToken> {
  let jwt: JWT | undefined
  if (opts.jwt !== undefined) {
    await fastify.register(fastifyJwt, jwtPluginOptions(opts.jwt, opts.clockTolerance, namespace))
    jwt = (fastify.jwt as unknown as Record<string, JWT>)[namespace]
  } else if (fastify.hasDecorator('jwt') && typeof fastify.jwt.verify === 'function') {
    jwt = fastify.jwt
  } else {
    throw new InvalidOptionError('jwt is required unless the app registered @fastify/jwt itself')
  }
  return (token) => (jwt as JWT).verify(token)
}

/** `fastify.wsGateway`, created by the first registration and shared by the later ones. */
function registriesOf (fastify: GatewayInstance): Map<string, Registry> {
  if (fastify[kRegistries] === undefined) {
    const registries = new Map<string, Registry>()
    fastify[kRegistries] = registries
    fastify.decorate('wsGateway', {
      stats: () => {
        const byPath: Record<string, GatewayStats> = {}
        for (const [path, registry] of registries) byPath[path] = registry.stats()
        return sumStats(byPath)
      }
    })
  }
  return fastify[kRegistries]
}

const plugin: FastifyPluginAsync<WsGatewayOptions> = async function wsGateway (fastify, options) {
  const opts = validateOptions(options)
  await ensureWebsocket(fastify, opts)
  const registries = registriesOf(fastify)
  const registry = new Registry(opts.heartbeatInterval)
  const namespace = `wsGateway${registries.size}`
  registries.set(opts.path, registry)
  fastify.addHook('preClose', async () => {
    await registry.shutdown({ code: opts.shutdownCloseCode, drainTimeout: opts.drainTimeout, closeTimeout: opts.closeTimeout })
  })
  // The route, the gateway's @fastify/jwt and its cookie parsing live in a context of their own.
  await fastify.register(async (scope) => {
    if (opts.tokenCookie !== undefined && !scope.hasRequestDecorator('cookies')) await scope.register(fastifyCookie)
    const verify = await tokenVerifier(scope, opts, namespace)
    addGatewayRoute(scope, { opts, registry, verify })
  })
}

/**
 * The gateway plugin: authenticates WebSocket clients with a JWT and relays their frames to the
 * backend named by an ID header.
 *
 * @example
 * ```ts
 * import Fastify from 'fastify'
 * import wsGateway from 'fastify-ws-gateway'
 *
 * const app = Fastify({ logger: true })
 * await app.register(wsGateway, {
 *   backends: { Backend_ABC: 'ws://127.0.0.1:9001' },
 *   jwt: { secret: process.env.JWT_SECRET! }
 * })
 * ```
 */
export const wsGateway = fp(plugin, { name: 'fastify-ws-gateway', fastify: '5.x' })
export default wsGateway

// CommonJS: require('fastify-ws-gateway') is the plugin itself, with the conventional aliases.
module.exports = Object.assign(wsGateway, module.exports, { default: wsGateway, wsGateway })
