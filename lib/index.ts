import type { FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'
import fastifyCookie from '@fastify/cookie'
import { tokenVerifier } from './handshake/auth/jwt'
import { addGatewayRoute } from './handshake/route'
import { ensureWebsocket } from './handshake/websocket'
import { validateOptions } from './options/validate'
import type { WsGatewayOptions } from './options/types'
import { registriesOf } from './registry/decorator'
import { Registry } from './registry/registry'

export type {
  BackendConfig, BackendOption, BackendTlsOptions, IdentityHeadersOption, JwksJwtOptions, JwksOptions, UpstreamHeaders, WsGatewayOptions
} from './options/types'
export type { GatewayStats, WsGatewayStats } from './registry/registry'
export type { WsGatewayDecorator } from './registry/decorator'
export type { Traffic } from './relay/types'
export type { TokenClaims } from './options/types'
export { DEFAULT_DROP_HEADERS } from './options/defaults'
export * as errors from './errors'
export { CloseCode } from './relay/close-codes'

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
    const verifier = await tokenVerifier(scope, opts, namespace)
    addGatewayRoute(scope, { opts, registry, verifier })
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
