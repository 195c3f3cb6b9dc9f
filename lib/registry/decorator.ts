import type { FastifyInstance } from 'fastify'
import { InvalidOptionError } from '../errors'
import type { MessageRouter } from '../messages/router'
import { resolveBackendEntry } from '../options/backend'
import type { MessageRoute } from '../options/message-types'
import type { BackendOption, ResolvedCluster, ResolvedOptions } from '../options/types'
import type { BackendTable } from '../upstream/backends'
import { Connections, type ApiStats, type Remote } from './api'
import { randomNodeId } from './ids'
import { LocalDirectory } from './local'
import { Registry, sumStats, type GatewayStats, type WsGatewayStats } from './registry'
import type { ClusterStats, ConnectionApi, Member, Outgoing, OutgoingClose } from './types'

/** What the gateway adds to the Fastify instance as `fastify.wsGateway`. */
export interface WsGatewayDecorator extends ConnectionApi {
  /** Connection, rejection and traffic counters, in total and per registered path. */
  stats: () => WsGatewayStats & { registry: ApiStats, cluster?: ClusterStats }
  /**
   * Adds a message-mode route before the app is ready. `path` names the registration when the app
   * has several in message mode. Throws `FST_WS_GATEWAY_INVALID_OPTION` for a bad definition, a
   * key that exists already, a call after ready, or no (or an ambiguous) message-mode registration.
   *
   * @example
   * ```ts
   * app.wsGateway.route('orders.list', { http: 'http://orders:8080/list', rateLimit: { messagesPerSecond: 5 } })
   * ```
   */
  route: (key: string, definition: MessageRoute, path?: string) => void
  /**
   * Adds or replaces a backend while the app runs, validated like the `backends` option (throws
   * `FST_WS_GATEWAY_INVALID_OPTION`). Connections already open to a replaced backend run on; new
   * ones use the new config. `path` names the registration when there are several.
   *
   * @example
   * ```ts
   * app.wsGateway.setBackend('Backend_ABC', { urls: ['ws://10.0.0.1:9001', 'ws://10.0.0.2:9001'] })
   * ```
   */
  setBackend: (id: string, config: BackendOption, path?: string) => void
  /**
   * Removes a backend: new connections to it get 404 (or `resolveBackend`'s answer); open ones run
   * on. Returns false if there was no such backend.
   *
   * @example
   * ```ts
   * app.wsGateway.deleteBackend('Backend_ABC')
   * ```
   */
  deleteBackend: (id: string, path?: string) => boolean
}

/** The backends of one registration, as `setBackend`/`deleteBackend` reach them. */
export interface PathBackends {
  readonly table: BackendTable
  readonly opts: ResolvedOptions
}

declare module 'fastify' {
  interface FastifyInstance {
    wsGateway: WsGatewayDecorator
  }
}

/** The cluster as the node runs it (lib/cluster's `ClusterLink`). */
export interface ClusterMembership extends Remote {
  start: () => Promise<void>
  stop: () => Promise<void>
  register: (member: Member) => Promise<void>
  unregister: (member: Member) => Promise<void>
  clusterStats: () => ClusterStats
  /** The backends announced on Redis (`announceBackend`), with their live URLs. */
  announced: () => Promise<Map<string, string[]>>
}

/** Whom an inbox entry of the cluster is for: one connection of this node, or those a filter picks. */
export type EntryTarget = { id: string } | { sub?: string, path?: string, backendId?: string }

/** Makes the cluster link of a node, given its directory and what to do with inbox entries. */
export type ClusterFactory = (local: LocalDirectory, onEntry: (target: EntryTarget, action: Outgoing | OutgoingClose) => void) => ClusterMembership

/**
 * This instance of the gateway: the registries of its paths, its connections by id and user,
 * the API on them, and its cluster link when there is one. One per app, made by the first
 * registration and shared by the later ones.
 */
export class GatewayNode {
  readonly registries = new Map<string, Registry>()
  readonly backends = new Map<string, PathBackends>()
  readonly local: LocalDirectory
  readonly connections: Connections
  readonly cluster?: ClusterMembership
  /** The message-mode registrations' routers, by path (see `WsGatewayDecorator.route`). */
  readonly routers = new Map<string, MessageRouter>()
  /** The `cluster` option the node was made with (message mode's queue routes use its Redis). */
  readonly clusterOptions: ResolvedCluster | undefined

  constructor (nodeId: string, makeCluster?: ClusterFactory, clusterOptions?: ResolvedCluster) {
    this.clusterOptions = clusterOptions
    this.local = new LocalDirectory(nodeId)
    this.cluster = makeCluster?.(this.local, (target, action) => {
      const members = 'id' in target ? [this.local.get(target.id)] : this.local.select(target)
      for (const member of members) this.connections.apply(member, action)
    })
    this.connections = new Connections(this.local, this.cluster)
  }

  get id (): string {
    return this.local.node
  }

  /** A connection opened on this node: reachable by the API from now on. */
  join (member: Member): void {
    this.local.add(member)
    // A failed registration is retried in full by the cluster's next sync.
    this.cluster?.register(member).catch(() => {})
  }

  /** The router of the one message-mode registration, or of the one at `path`. */
  router (path: string | undefined): MessageRouter {
    if (path !== undefined) {
      const router = this.routers.get(path)
      if (router === undefined) throw new InvalidOptionError(`no message-mode gateway at path "${path}"`)
      return router
    }
    if (this.routers.size !== 1) throw new InvalidOptionError(this.routers.size === 0 ? 'no gateway is in message mode' : 'several gateways are in message mode: give the path')
    return this.routers.values().next().value as MessageRouter
  }

  leave (member: Member): void {
    this.local.remove(member)
    this.cluster?.unregister(member).catch(() => {})
  }

  /** The backends at `path`, or of the only registration. */
  backendsAt (method: string, path: string | undefined): PathBackends {
    if (path === undefined) {
      if (this.backends.size === 1) return this.backends.values().next().value as PathBackends
      throw new InvalidOptionError(`${method}: name the path, ${this.backends.size} gateways are registered`)
    }
    const backends = this.backends.get(path)
    if (backends === undefined) throw new InvalidOptionError(`${method}: no gateway is registered at "${path}"`)
    return backends
  }

  setBackend (id: string, config: BackendOption, path?: string): void {
    const { table, opts } = this.backendsAt('setBackend', path)
    table.set(resolveBackendEntry(id, config, `setBackend("${id}")`, opts.maxPayload))
  }

  deleteBackend (id: string, path?: string): boolean {
    return this.backendsAt('deleteBackend', path).table.delete(id)
  }

  stats (): ReturnType<WsGatewayDecorator['stats']> {
    const byPath: Record<string, GatewayStats> = {}
    for (const [path, registry] of this.registries) byPath[path] = registry.stats()
    const stats = { ...sumStats(byPath), registry: { ...this.connections.stats } }
    return this.cluster === undefined ? stats : { ...stats, cluster: this.cluster.clusterStats() }
  }
}

const kNode = Symbol('fastify-ws-gateway.node')
type GatewayInstance = FastifyInstance & { [kNode]?: GatewayNode }

/**
 * The app's gateway node and `fastify.wsGateway`, made by the first registration (which alone
 * may set up the cluster) and shared by the later ones.
 */
export function gatewayNode (fastify: GatewayInstance, cluster: ResolvedCluster | undefined, makeCluster: ClusterFactory | undefined): { node: GatewayNode, created: boolean } {
  const existing = fastify[kNode]
  if (existing !== undefined) return { node: existing, created: false }
  const node = new GatewayNode(cluster?.nodeId ?? randomNodeId(), makeCluster, cluster)
  fastify[kNode] = node
  const api = node.connections
  fastify.decorate('wsGateway', {
    send: api.send.bind(api),
    sendToUser: api.sendToUser.bind(api),
    broadcast: api.broadcast.bind(api),
    close: api.close.bind(api),
    closeUser: api.closeUser.bind(api),
    get: api.get.bind(api),
    list: api.list.bind(api),
    stats: () => node.stats(),
    route: (key: string, definition: MessageRoute, path?: string) => node.router(path).add(key, definition),
    setBackend: node.setBackend.bind(node),
    deleteBackend: node.deleteBackend.bind(node)
  } satisfies WsGatewayDecorator)
  return { node, created: true }
}
