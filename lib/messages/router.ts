import type { FastifyBaseLogger, FastifyRequest, FastifySchemaCompiler } from 'fastify'
import type { Duplex } from 'node:stream'
import { InvalidOptionError } from '../errors'
import { RedisLinks } from '../cluster/redis'
import type { GatewayConnection, MessageRoute, ResolvedMessages, ResolvedRoute } from '../options/message-types'
import type { ResolvedCluster } from '../options/types'
import { resolveRoute, type RouteDefaults } from '../options/messages'
import { CircuitBreaker } from './breaker'
import { runConnectHook, runDisconnectHook } from './hooks'
import { httpBackend, HttpPools } from './backends/http'
import { queueBackend } from './backends/queue'
import type { Backend } from './backends/types'
import { wsBackend } from './backends/ws'
import { QueueClient } from './queue/client'
import { emptyMessageStats } from './stats'
import { compileMessageSchema, type MessageValidator } from './validator'

/** A route ready to take messages: its options, checks, breaker and backend. */
export interface ActiveRoute {
  readonly options: ResolvedRoute
  /** The route's schema, compiled at ready (undefined: none). */
  validate: MessageValidator | undefined
  readonly breaker: CircuitBreaker | undefined
  /** ms before the gateway stops waiting: the target's own timeout, else the route's. */
  readonly timeout: number
  readonly call: Backend
}

/** What a router needs of its registration and of the app's gateway node. */
export interface RouterSettings {
  readonly maxPayload: number
  /** The node's `cluster` option: queue routes need its Redis. */
  readonly cluster: ResolvedCluster | undefined
  /** The node's id: its queue inbox is `<prefix>:{<nodeId>}:replies`. */
  readonly nodeId: string
  readonly connectTimeout: number
  readonly path: string
}

/**
 * The routes of one message-mode registration and what they share: the HTTP pools, the queue
 * client (made at ready when a queue route exists), the compiled schemas and the counters.
 * Routes may be added until the app is ready (`fastify.wsGateway.route`).
 */
export class MessageRouter {
  private readonly routes = new Map<string, ActiveRoute>()
  private readonly pools: HttpPools
  private queue: QueueClient | undefined
  private ready = false
  /** Disconnect hooks still being sent; closing waits for them. */
  private readonly leaving = new Set<Promise<void>>()
  /** The registration's own schema, compiled at ready. */
  validate: MessageValidator | undefined
  readonly stats = emptyMessageStats()

  constructor (readonly messages: ResolvedMessages, private readonly settings: RouterSettings) {
    this.pools = new HttpPools(settings.maxPayload)
    for (const route of messages.routes.values()) this.activate(route)
  }

  private get defaults (): RouteDefaults {
    const { timeout, rateLimit, circuitBreaker } = this.messages
    return { timeout, rateLimit, circuitBreaker }
  }

  /** Adds a route; `FST_WS_GATEWAY_INVALID_OPTION` for a bad definition, a duplicate key, or after ready. */
  add (key: string, definition: MessageRoute): void {
    if (this.ready) throw new InvalidOptionError('routes can only be added before the app is ready')
    if (this.routes.has(key)) throw new InvalidOptionError(`messages.routes["${key}"] exists already`)
    this.activate(resolveRoute(key, definition, this.defaults))
  }

  private activate (options: ResolvedRoute): void {
    const { target } = options
    let call: Backend
    let timeout = options.timeout
    if (target.kind === 'http') {
      call = httpBackend(target, this.pools)
      timeout = target.timeout ?? timeout
    } else if (target.kind === 'ws') {
      call = wsBackend(target, this.settings.maxPayload)
    } else {
      if (this.settings.cluster === undefined) throw new InvalidOptionError(`messages.routes["${options.key}"].queue needs the cluster option (cluster.redis) on the app's first gateway registration`)
      // The client exists from ready on, before any connection can send a message.
      call = queueBackend(target, () => this.queue as QueueClient)
      timeout = target.replyTimeout ?? timeout
    }
    const breaker = options.circuitBreaker === false ? undefined : new CircuitBreaker(options.circuitBreaker)
    this.routes.set(options.key, { options, validate: undefined, breaker, timeout, call })
  }

  /** The route for a key: its own, else `$default`. */
  find (key: string): ActiveRoute | undefined {
    return this.routes.get(key) ?? this.routes.get('$default')
  }

  /**
   * At the app's ready: compiles every schema with the app's validator compiler, and connects the
   * queue when a route needs it (waiting up to `connectTimeout` for its inbox to be read).
   */
  async start (compile: FastifySchemaCompiler<unknown> | undefined, log: FastifyBaseLogger): Promise<void> {
    this.ready = true
    const schemaOf = (schema: unknown, where: string): MessageValidator | undefined => schema === undefined
      ? undefined
      : compileMessageSchema(compile as FastifySchemaCompiler<unknown>, schema, this.settings.path, where)
    this.validate = schemaOf(this.messages.schema, 'messages.schema')
    for (const route of this.routes.values()) route.validate = schemaOf(route.options.schema, `messages.routes["${route.options.key}"].schema`)
    const cluster = this.settings.cluster
    if (cluster !== undefined && [...this.routes.values()].some((route) => route.options.target.kind === 'queue')) {
      this.queue = new QueueClient(new RedisLinks(cluster, log), cluster.prefix, this.settings.nodeId, this.stats, log)
      const timer = new Promise<'late'>((resolve) => setTimeout(resolve, this.settings.connectTimeout, 'late').unref())
      if (await Promise.race([this.queue.whenArmed, timer]) === 'late') log.warn('ws gateway queue not connected yet; queue routes answer QUEUE_UNAVAILABLE until it is')
    }
  }

  /** Runs the `connect` hook, if any, before the client's upgrade. */
  async connect (connection: GatewayConnection, request: FastifyRequest, client: Duplex): Promise<void> {
    const target = this.messages.connect
    if (target !== undefined) await runConnectHook(this.pools, target, connection, request, client, this.settings.connectTimeout)
  }

  /** Sends the `disconnect` hook, if any (best-effort; closing the app waits for it). */
  disconnect (connection: GatewayConnection, details: { code: number, durationMs: number }): void {
    const target = this.messages.disconnect
    if (target === undefined) return
    // Never rejects: a failure is logged by the hook.
    const sending: Promise<void> = runDisconnectHook(this.pools, target, connection, details, this.settings.connectTimeout)
      .then(() => { this.leaving.delete(sending) })
    this.leaving.add(sending)
  }

  async close (): Promise<void> {
    await Promise.all(this.leaving)
    await Promise.all([this.pools.close(), this.queue?.close()])
  }
}
