// `request.user`, which the gateway sets, is typed by @fastify/jwt's declarations (users shape it
// through @fastify/jwt's `FastifyJWT` interface), so the package's types load them.
/// <reference types="@fastify/jwt" preserve="true" />
import type { FastifyBaseLogger, FastifyInstance, FastifyPluginAsync } from 'fastify'
import fp from 'fastify-plugin'
import fastifyCookie from '@fastify/cookie'
import { tokenVerifier } from './handshake/auth/jwt'
import { addGatewayRoute } from './handshake/route'
import { ensureWebsocket } from './handshake/websocket'
import { MessageRouter } from './messages/router'
import { setupMetrics } from './metrics/route'
import { validateOptions } from './options/validate'
import type { WsGatewayOptions } from './options/types'
import { AnnouncementWatcher } from './cluster/announce'
import { ClusterLink } from './cluster/cluster'
import { InvalidOptionError } from './errors'
import { managementRoutes } from './management/routes'
import type { ResolvedOptions } from './options/types'
import { gatewayNode, type ClusterMembership, type GatewayNode } from './registry/decorator'
import { Registry } from './registry/registry'
import { BackendTable } from './upstream/backends'

export type {
  BackendConfig, BackendOption, BackendTlsOptions, BalanceMode, DnsOptions, GatewayJwtOptions, GatewayJwtVerifyOptions, HealthOptions,
  IdentityHeadersOption, JwksJwtOptions, JwksOptions, MetricsOptions, ProbeOptions, UpstreamHeaders, WsGatewayOptions
} from './options/types'
export type { AnnounceOptions } from './options/announce'
export type { BackendStats, GatewayStats, WsGatewayStats } from './registry/registry'
export type { WsGatewayDecorator } from './registry/decorator'
export type {
  BroadcastOptions, ClusterStats, ConnectionApi, ConnectionId, ConnectionInfo, ConnectionPage, FanOut, ListQuery, SendOptions
} from './registry/types'
export type { ApiStats } from './registry/api'
export type { ClusterOptions, ManagementApiOptions } from './options/types'
export type {
  BackendHeaders, CircuitBreakerOptions, GatewayConnection, HttpTarget, MessageHook, MessageMiddleware, MessageRateLimit,
  MessageRoute, MessagesOptions, QueueTarget, RouteKeyFunction, WsTarget
} from './options/message-types'
export type { MessageStats } from './messages/stats'
export { createQueueWorker, type QueueRequest, type QueueWorker, type QueueWorkerOptions } from './messages/queue/worker'
export type { Traffic } from './relay/types'
export type { TokenClaims } from './options/types'
export { DEFAULT_DROP_HEADERS } from './options/defaults'
export * as errors from './errors'
export { announceBackend } from './cluster/announce'
export { CloseCode } from './relay/close-codes'

/** The level names the app's logger knows, when it tells (pino does; Fastify's silent logger does not). */
function logLevelsOf (log: FastifyBaseLogger): string[] | undefined {
  const values = (log as { levels?: { values?: Record<string, number> } }).levels?.values
  return values === undefined ? undefined : Object.keys(values)
}

const plugin: FastifyPluginAsync<WsGatewayOptions> = async function wsGateway (fastify, options) {
  const opts = validateOptions(options, logLevelsOf(fastify.log))
  const node = joinNode(fastify, opts)
  const registry = new Registry(opts.heartbeatInterval)
  fastify.addHook('preClose', async () => {
    await registry.shutdown({ code: opts.shutdownCloseCode, drainTimeout: opts.drainTimeout, closeTimeout: opts.closeTimeout })
  })
  // The routes, their WebSocket server, cookie parsing and `request.user` live in a context of the
  // gateway's own, nothing of which reaches the app. The plugin is wrapped in fastify-plugin (so
  // `fastify.wsGateway` reaches the app), which makes Fastify skip the register options it applies
  // to a context: the gateway applies them to its own.
  const { prefix, logLevel, logSerializers } = opts
  const router = opts.messages === undefined
    ? undefined
    : new MessageRouter(opts.messages, { maxPayload: opts.maxPayload, cluster: node.clusterOptions, nodeId: node.id, connectTimeout: opts.connectTimeout, path: opts.path })
  if (router !== undefined) registry.messageStats = router.stats
  await fastify.register(async (scope) => {
    await ensureWebsocket(scope)
    if (opts.tokenCookie !== undefined && !scope.hasRequestDecorator('cookies')) await scope.register(fastifyCookie)
    // Set once the token is verified; @fastify/jwt's types give `user` no null.
    if (!scope.hasRequestDecorator('user')) scope.decorateRequest('user', null as never)
    const verifier = tokenVerifier(scope, opts)
    const path = `${scope.prefix}${opts.path}`
    const backends = new BackendTable(opts, fastify.log)
    fastify.addHook('onClose', async () => { backends.close() })
    node.registries.set(path, registry)
    node.backends.set(path, { table: backends, opts })
    const metrics = setupMetrics(fastify, opts, {
      path,
      stats: () => registry.stats(),
      endpointStates: () => backends.states(),
      ejections: backends.ejections,
      cluster: () => node.cluster?.clusterStats()
    })
    addGatewayRoute(scope, { opts, registry, node, backends, verifier, metrics, router })
    if (router !== undefined) {
      node.routers.set(path, router)
      scope.addHook('onReady', async () => { await router.start(scope.validatorCompiler, scope.log) })
      scope.addHook('onClose', async () => { await router.close() })
    }
    if (opts.managementApi !== undefined) {
      await scope.register(managementRoutes(node.connections, opts.managementApi, opts.retryAfter), { prefix: opts.managementApi.prefix })
    }
  }, { prefix, logLevel, logSerializers })
}

/**
 * The app's gateway node (see `GatewayNode`), made by its first registration — the only one that
 * may set `cluster` — with the cluster link started when the app is ready and stopped on close.
 */
function joinNode (fastify: FastifyInstance, opts: ResolvedOptions): GatewayNode {
  const { cluster } = opts
  const { node, created } = gatewayNode(fastify, cluster, cluster === undefined
    ? undefined
    : (local, onEntry) => new ClusterLink(cluster, local, fastify.log, onEntry))
  if (!created && cluster !== undefined) throw new InvalidOptionError('cluster must be set on the app\'s first gateway registration only')
  if (!created || cluster === undefined) return node
  const link = node.cluster as ClusterMembership
  // Backends announced on Redis join every registration's pools, read as often as liveness is.
  const watcher = new AnnouncementWatcher(async () => await link.announced(), Math.floor(cluster.nodeTtl / 3), (announced) => {
    for (const { table } of node.backends.values()) table.announce(announced)
  })
  fastify.addHook('onReady', async () => {
    await link.start()
    await watcher.start()
  })
  fastify.addHook('onClose', async () => {
    watcher.stop()
    await link.stop()
  })
  return node
}

/**
 * The gateway plugin: authenticates WebSocket clients with a JWT and relays their frames to the
 * backend named by an ID header — or, with `messages`, routes each of their messages to an HTTP,
 * WebSocket or queue backend and answers it (message mode).
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
