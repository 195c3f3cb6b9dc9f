import type { FastifyBaseLogger } from 'fastify'
import type { Redis } from 'ioredis'
import { ConnectionGoneError, ClusterUnavailableError, PayloadTooLargeError } from '../errors'
import type { ClusterMembership } from '../registry/decorator'
import { nodeOf } from '../registry/ids'
import type { LocalDirectory, MemberFilter } from '../registry/local'
import type { ClusterStats, ConnectionId, ConnectionInfo, ConnectionPage, Member, Outgoing, OutgoingClose } from '../registry/types'
import { entryFields, infoFromHash, memberFields, type Target } from './codec'
import { readAnnounced } from './announce'
import { Inbox } from './inbox'
import { Keys, countField, countFields } from './keys'
import { listPage, type CheckedQuery } from './list'
import type { ResolvedCluster } from '../options/types'
import { RedisLinks } from './redis'
import type { RegistryScripts } from './scripts'
import { execAll, removeConnections, sweepNode } from './sweep'

/**
 * This node's part of the registry on Redis: it keeps its liveness key and its connections
 * registered (again in full after an outage: a restarted Redis may have lost everything), reads
 * its inbox, sweeps nodes whose liveness key expired, and reaches other nodes' connections with
 * one append to their owner's inbox (`Remote`).
 */
export class ClusterLink implements ClusterMembership {
  readonly keys: Keys
  private readonly links: RedisLinks
  private readonly inbox: Inbox
  private readonly timer: NodeJS.Timeout
  private readonly stats = { redisUp: false, outages: 0, remoteSends: 0 }
  /** Redis's clock minus ours, so deadlines are checked on Redis's clock (see scripts.ts). */
  private clockOffset = 0
  /** The registry in Redis may lack what this node holds: a full sync is due. */
  private dirty = true
  private syncing: Promise<void> | undefined
  private readonly touched = new Map<ConnectionId, number>()
  private readonly onReady = (): void => {
    this.dirty = true
    this.tick()
  }

  constructor (
    private readonly cluster: ResolvedCluster,
    private readonly local: LocalDirectory,
    private readonly log: FastifyBaseLogger,
    onEntry: (target: Target, action: Outgoing | OutgoingClose) => void
  ) {
    this.keys = new Keys(cluster.prefix)
    this.links = new RedisLinks(cluster, log)
    this.inbox = new Inbox(this.keys.inbox(local.node), this.links.reader, this.links.command, onEntry)
    // Every reconnection may follow a Redis restart: register everything again.
    this.links.command.on('ready', this.onReady)
    this.timer = setInterval(() => this.tick(), Math.floor(cluster.nodeTtl / 3)).unref()
  }

  get node (): string {
    return this.local.node
  }

  /** Connects and registers this node, waiting at most `commandTimeout`: without Redis the gateway still starts. */
  async start (): Promise<void> {
    const timeout = new Promise((resolve) => setTimeout(resolve, this.cluster.commandTimeout).unref())
    const { command } = this.links
    // Connected, 'ready' has started the first sync; wait for it (or the timeout), then go on.
    // (Not `once(command, 'ready')`: it rejects on the 'error' a refused connection emits.)
    if (command.status !== 'ready') await Promise.race([new Promise((resolve) => command.once('ready', resolve)), timeout])
    this.tick()
    await Promise.race([this.syncing, timeout])
  }

  async stop (): Promise<void> {
    clearInterval(this.timer)
    this.links.command.removeListener('ready', this.onReady)
    this.inbox.stop()
    await this.syncing
    // Leaving: this node's keys go now rather than after nodeTtl (best effort: Redis may be down).
    await this.links.run((redis) => sweepNode(redis, this.keys, this.node)).catch(() => {})
    await this.links.close()
    await this.inbox.done
  }

  clusterStats (): ClusterStats {
    const { handled, handledAt, lastId } = this.inbox
    // An entry's id starts with the millisecond Redis appended it at.
    const inboxLagMs = handled === 0 ? 0 : Math.max(0, handledAt + this.clockOffset - Number(lastId.split('-')[0]))
    return { node: this.node, ...this.stats, inboxHandled: handled, inboxLagMs }
  }

  async announced (): Promise<Map<string, string[]>> {
    return await this.run(async (redis) => await readAnnounced(redis, this.keys))
  }

  /** A Redis exchange worked or failed: track outages, and sync again once Redis is back. */
  private up (ok: boolean): void {
    if (this.stats.redisUp && !ok) {
      this.stats.outages++
      this.log.warn({ node: this.node }, 'ws gateway cluster registry unavailable')
    } else if (!this.stats.redisUp && ok && this.stats.outages > 0) {
      this.log.info({ node: this.node }, 'ws gateway cluster registry available again')
    }
    if (!ok) this.dirty = true
    this.stats.redisUp = ok
  }

  /** Runs `work` on Redis within `commandTimeout`, noting whether Redis answered. */
  private async run<T> (work: (redis: Redis & RegistryScripts) => Promise<T>): Promise<T> {
    try {
      const result = await this.links.run(work)
      this.up(true)
      return result
    } catch (err) {
      this.up(false)
      throw err
    }
  }

  /** The periodic work: liveness, a sync when due, recent activity, and the sweep of dead nodes. */
  private tick (): void {
    if (this.syncing !== undefined) return
    this.syncing = this.beat().catch(() => {}).finally(() => { this.syncing = undefined })
  }

  private async beat (): Promise<void> {
    const { keys, node, cluster } = this
    const sentAt = Date.now()
    const [time] = await this.run(async (redis) => await execAll(redis.pipeline()
      .time().set(keys.alive(node), Date.now(), 'PX', cluster.nodeTtl).sadd(keys.nodes, node)))
    const [seconds, micros] = time as [string, string]
    const receivedAt = Date.now()
    // Redis read its clock somewhere in the round trip: a slow one (a stalled event loop) says
    // too little to move the estimate.
    if (receivedAt - sentAt < cluster.commandTimeout / 4) {
      this.clockOffset = Number(seconds) * 1000 + Math.floor(Number(micros) / 1000) - (sentAt + receivedAt) / 2
    }
    if (this.dirty) await this.sync()
    await this.publishActivity()
    await this.sweepDeadNodes()
  }

  /**
   * Makes the registry match what this node holds: connections it no longer has are removed,
   * every one it has is registered (again: a restarted Redis may have lost them; registering is
   * idempotent).
   */
  private async sync (): Promise<void> {
    this.dirty = false
    const { keys, node } = this
    const [last, exists] = await this.run(async (redis) => await execAll(redis.pipeline()
      .xrevrange(keys.inbox(node), '+', '-', 'COUNT', 1).exists(keys.inbox(node))))
    // Reconciled, never wiped: a live connection stays reachable all through a sync.
    const registered = await this.run(async (redis) => await redis.smembers(keys.conns(node)))
    const stale = registered.filter((id) => this.local.get(id) === undefined)
    await this.run((redis) => removeConnections(redis, keys, node, stale))
    for (const member of [...this.local.all()]) {
      // One that closed meanwhile was unregistered already: registering it now would leave it behind.
      if (this.local.get(member.id) === member) await this.register(member)
    }
    // First start: skip what an earlier run of this node left; a Redis that lost the inbox: read it all.
    const lastId = (last as Array<[string]>)[0]?.[0] ?? '0-0'
    if (!this.inbox.started) this.inbox.start(lastId)
    else if (exists === 0) this.inbox.lastId = '0-0'
    this.log.debug({ node, connections: this.local.size }, 'ws gateway cluster registry synced')
  }

  /** Adds a connection of this node to the registry (on failure, the next sync does). */
  async register (member: Member): Promise<void> {
    const { keys, node } = this
    await this.run(async (redis) => {
      const batch = redis.pipeline()
      ;(batch as unknown as typeof redis).wsgRegister(keys.conn(node, member.id), keys.conns(node), keys.counts(node),
        member.id, countFields(member.path, member.backendId).join('\n'), ...memberFields(member, node))
      batch.zadd(keys.all, 0, member.id)
      if (member.sub !== undefined) batch.zadd(keys.user(member.sub), 0, member.id)
      await execAll(batch)
    })
  }

  async unregister (member: Member): Promise<void> {
    const { keys, node } = this
    this.touched.delete(member.id)
    await this.run(async (redis) => {
      const batch = redis.pipeline()
      ;(batch as unknown as typeof redis).wsgUnregister(keys.conn(node, member.id), keys.conns(node), keys.counts(node), member.id)
      batch.zrem(keys.all, member.id)
      if (member.sub !== undefined) batch.zrem(keys.user(member.sub), member.id)
      await execAll(batch)
    })
  }

  /** Writes `lastActiveAt` of the connections that were active since the last beat. */
  private async publishActivity (): Promise<void> {
    const changed: Array<[string, number]> = []
    for (const member of this.local.all()) {
      const at = member.lastActiveAt()
      if (this.touched.get(member.id) !== at) changed.push([member.id, at])
    }
    if (changed.length === 0) return
    await this.run(async (redis) => {
      const batch = redis.pipeline()
      // Only connections still held here: a closed one's hash was deleted by a command sent before this one.
      for (const [id, at] of changed) batch.hset(this.keys.conn(this.node, id), 'lastActiveAt', new Date(at).toISOString())
      await execAll(batch)
    })
    for (const [id, at] of changed) this.touched.set(id, at)
  }

  /** Removes the registrations of nodes whose liveness key expired (any node may do it; it is idempotent). */
  private async sweepDeadNodes (): Promise<void> {
    const { keys } = this
    const nodes = await this.run(async (redis) => await redis.smembers(keys.nodes))
    const alive = await this.run(async (redis) => await Promise.all(nodes.map(async (n) => await redis.exists(keys.alive(n)))))
    for (const [i, node] of nodes.entries()) {
      if (alive[i] === 0) {
        this.log.info({ node }, 'ws gateway cluster node gone: its connections are removed')
        await this.run((redis) => sweepNode(redis, keys, node))
      }
    }
  }

  /**
   * The deadline of a call starting now, on Redis's clock: a margin (a quarter of
   * `commandTimeout`, at most 100 ms) before the caller gives up, so that the reply of a script
   * that ran in time has that long to come back.
   */
  private deadline (): number {
    const { commandTimeout } = this.cluster
    return Date.now() + this.clockOffset + commandTimeout - Math.min(commandTimeout / 4, 100)
  }

  private async deliver (id: ConnectionId, size: number, action: Outgoing | OutgoingClose): Promise<void> {
    const node = nodeOf(id) as string
    const { keys } = this
    const result = await this.run(async (redis) => await redis.wsgDeliver(keys.alive(node), keys.conn(node, id), keys.inbox(node),
      this.deadline(), size, ...entryFields({ id }, action)))
    if (Array.isArray(result)) throw new PayloadTooLargeError(result[1])
    if (result === 0) throw new ConnectionGoneError()
    // -1: Redis ran the script past the caller's deadline, which the caller's own timer has
    // nearly always answered first; only a wrong clock estimate lets it through to here.
    /* c8 ignore next */
    if (result === -1) throw new ClusterUnavailableError()
    this.stats.remoteSends++
  }

  async send (id: ConnectionId, message: Outgoing): Promise<void> {
    await this.deliver(id, message.data.length, message)
  }

  async close (id: ConnectionId, close: OutgoingClose): Promise<void> {
    await this.deliver(id, -1, close)
  }

  /**
   * One append per other node that has targets: a user's connections are found through the
   * user's index; a broadcast reaches every live node, each counting its own targets.
   */
  async fanOut (filter: MemberFilter, action: Outgoing | OutgoingClose): Promise<number> {
    const { keys } = this
    const perNode = new Map<string, number | ''>()
    if (filter.sub !== undefined) {
      const ids = await this.run(async (redis) => await redis.zrange(keys.user(filter.sub as string), 0, -1))
      for (const id of ids) {
        const node = nodeOf(id) as string
        if (node !== this.node) perNode.set(node, ((perNode.get(node) as number | undefined) ?? 0) + 1)
      }
    } else {
      const nodes = await this.run(async (redis) => await redis.smembers(keys.nodes))
      for (const node of nodes) if (node !== this.node) perNode.set(node, '')
    }
    if (perNode.size === 0) return 0
    const field = countField(filter.path, filter.backendId)
    const fields = entryFields(filter, action)
    const deadline = this.deadline()
    const counts = await this.run(async (redis) => await Promise.all([...perNode].map(async ([node, count]) =>
      await redis.wsgFanOut(keys.alive(node), keys.counts(node), keys.inbox(node), deadline, count, field, ...fields))))
    // As in `deliver`: past the deadline, answered first by the caller's timer in all but name.
    /* c8 ignore next */
    if (counts.includes(-1)) throw new ClusterUnavailableError()
    this.stats.remoteSends += counts.filter((count) => count > 0).length
    return counts.reduce((sum, count) => sum + count, 0)
  }

  async get (id: ConnectionId): Promise<ConnectionInfo | undefined> {
    const node = nodeOf(id) as string
    const [alive, hash] = await this.run(async (redis) => await execAll(redis.pipeline()
      .exists(this.keys.alive(node)).hgetall(this.keys.conn(node, id))))
    return alive === 0 ? undefined : infoFromHash(hash as Record<string, string>)
  }

  async list (query: CheckedQuery): Promise<ConnectionPage> {
    return await this.run(async (redis) => await listPage(redis, this.keys, query))
  }
}
