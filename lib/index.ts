import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'
import fastifyCookie from '@fastify/cookie'
import { tokenVerifier } from './handshake/auth/jwt'
import { addGatewayRoute } from './handshake/route'
import { ensureWebsocket } from './handshake/websocket'
import { validateOptions } from './options/validate'
import type { WsGatewayOptions } from './options/types'
import { ClusterLink } from './cluster/cluster'
import { InvalidOptionError } from './errors'
import { managementRoutes } from './management/routes'
import type { ResolvedOptions } from './options/types'
import { gatewayNode, type GatewayNode } from './registry/decorator'
import { Registry } from './registry/registry'

export type {
  BackendConfig, BackendOption, BackendTlsOptions, IdentityHeadersOption, JwksJwtOptions, JwksOptions, UpstreamHeaders, WsGatewayOptions
} from './options/types'
export type { GatewayStats, WsGatewayStats } from './registry/registry'
export type { WsGatewayDecorator } from './registry/decorator'
export type {
  BroadcastOptions, ClusterStats, ConnectionApi, ConnectionId, ConnectionInfo, ConnectionPage, FanOut, ListQuery, SendOptions
} from './registry/types'
export type { ApiStats } from './registry/api'
export type { ClusterOptions, ManagementApiOptions } from './options/types'
export type { Traffic } from './relay/types'
export type { TokenClaims } from './options/types'
export { DEFAULT_DROP_HEADERS } from './options/defaults'
export * as errors from './errors'
export { CloseCode } from './relay/close-codes'

const plugin: FastifyPluginAsync<WsGatewayOptions> = async function wsGateway (fastify, options) {
  const opts = validateOptions(options)
  await ensureWebsocket(fastify, opts)
  const node = joinNode(fastify, opts)
  const registry = new Registry(opts.heartbeatInterval)
  const namespace = `wsGateway${node.registries.size}`
  node.registries.set(opts.path, registry)
  fastify.addHook('preClose', async () => {
    await registry.shutdown({ code: opts.shutdownCloseCode, drainTimeout: opts.drainTimeout, closeTimeout: opts.closeTimeout })
  })
  // The route, the gateway's @fastify/jwt and its cookie parsing live in a context of their own.
  await fastify.register(async (scope) => {
    if (opts.tokenCookie !== undefined && !scope.hasRequestDecorator('cookies')) await scope.register(fastifyCookie)
    const verifier = await tokenVerifier(scope, opts, namespace)
    addGatewayRoute(scope, { opts, registry, node, verifier })
  })
  if (opts.managementApi !== undefined) {
    await fastify.register(managementRoutes(node.connections, opts.managementApi, opts.retryAfter), { prefix: opts.managementApi.prefix })
  }
}

/**
 * The app's gateway node (see `GatewayNode`), made by its first registration — the only one that
 * may set `cluster` — with the cluster link started when the app is ready and stopped on close.
 */
function joinNode (fastify: FastifyInstance, opts: ResolvedOptions): GatewayNode {
  const { cluster } = opts
  const { node, created } = gatewayNode(fastify, cluster?.nodeId, cluster === undefined
    ? undefined
    : (local, onEntry) => new ClusterLink(cluster, local, fastify.log, onEntry))
  if (!created && cluster !== undefined) throw new InvalidOptionError('cluster must be set on the app\'s first gateway registration only')
  const link = node.cluster
  if (created && link !== undefined) {
    fastify.addHook('onReady', async () => { await link.start() })
    fastify.addHook('onClose', async () => { await link.stop() })
  }
  return node
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
