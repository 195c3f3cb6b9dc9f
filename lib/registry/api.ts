import { ConnectionGoneError, InvalidQueryError } from '../errors'
import { checkQuery, infoOf, type LocalDirectory, type MemberFilter } from './local'
import { deliver, outgoing, outgoingClose } from './message'
import { nodeOf } from './ids'
import type {
  BroadcastOptions, ConnectionApi, ConnectionId, ConnectionInfo, ConnectionPage, FanOut, ListQuery, Member, Outgoing,
  OutgoingClose, SendOptions
} from './types'

/**
 * The other instances, as the cluster (lib/cluster) reaches them: every method addresses only
 * connections of other nodes, and rejects with a coded error (`ClusterUnavailableError` when
 * Redis does not answer in time).
 */
export interface Remote {
  send: (id: ConnectionId, message: Outgoing) => Promise<void>
  close: (id: ConnectionId, close: OutgoingClose) => Promise<void>
  /** Resolves with how many connections of other nodes it was addressed to. */
  fanOut: (filter: MemberFilter, action: Outgoing | OutgoingClose) => Promise<number>
  get: (id: ConnectionId) => Promise<ConnectionInfo | undefined>
  /** A page over every node, this one included. */
  list: (query: ReturnType<typeof checkQuery>) => Promise<ConnectionPage>
}

/** Counters of what the API did on this instance, for `stats()`. */
export interface ApiStats {
  /** Messages written to clients of this instance by the API (from any instance). */
  pushed: number
  /** Fan-out targets of this instance skipped: buffer full, message over their `maxPayload`, or closing. */
  skipped: number
}

function checkSub (sub: unknown): string {
  if (typeof sub !== 'string' || sub === '') throw new InvalidQueryError('sub must be a non-empty string')
  return sub
}

function checkFilter (opts: BroadcastOptions | undefined): MemberFilter {
  const { path, backendId } = opts ?? {}
  for (const [name, value] of Object.entries({ path, backendId })) {
    if (value !== undefined && (typeof value !== 'string' || value === '')) throw new InvalidQueryError(`${name} must be a non-empty string`)
  }
  return { path, backendId }
}

/**
 * `fastify.wsGateway`'s connection API: local connections are reached directly; with a cluster,
 * connections of other instances through it (one hop to their owner, no scatter-gather).
 */
export class Connections implements ConnectionApi {
  readonly stats: ApiStats = { pushed: 0, skipped: 0 }

  constructor (private readonly local: LocalDirectory, private readonly remote?: Remote) {}

  /** Whether an id is this instance's (or, with no cluster, could only be). */
  private isLocal (id: ConnectionId): boolean {
    return this.remote === undefined || nodeOf(id) === this.local.node
  }

  async send (id: ConnectionId, data: string | Buffer, opts?: SendOptions): Promise<void> {
    const message = outgoing(data, opts?.binary)
    if (typeof id !== 'string' || nodeOf(id) === undefined) throw new ConnectionGoneError()
    if (!this.isLocal(id)) return await (this.remote as Remote).send(id, message)
    deliver(this.local.get(id), message)
    this.stats.pushed++
  }

  async close (id: ConnectionId, code?: number, reason?: string): Promise<void> {
    const close = outgoingClose(code, reason)
    if (typeof id !== 'string' || nodeOf(id) === undefined) throw new ConnectionGoneError()
    if (!this.isLocal(id)) return await (this.remote as Remote).close(id, close)
    const member = this.local.get(id)
    if (member === undefined) throw new ConnectionGoneError()
    member.close(close)
  }

  async sendToUser (sub: string, data: string | Buffer, opts?: SendOptions): Promise<FanOut> {
    return await this.fanOut({ sub: checkSub(sub) }, outgoing(data, opts?.binary))
  }

  async closeUser (sub: string, code?: number, reason?: string): Promise<FanOut> {
    return await this.fanOut({ sub: checkSub(sub) }, outgoingClose(code, reason))
  }

  async broadcast (data: string | Buffer, opts?: BroadcastOptions): Promise<FanOut> {
    const message = outgoing(data, opts?.binary)
    return await this.fanOut(checkFilter(opts), message)
  }

  async get (id: ConnectionId): Promise<ConnectionInfo | undefined> {
    if (typeof id !== 'string' || nodeOf(id) === undefined) return undefined
    if (!this.isLocal(id)) return await (this.remote as Remote).get(id)
    const member = this.local.get(id)
    return member === undefined ? undefined : infoOf(member, this.local.node)
  }

  async list (query?: ListQuery): Promise<ConnectionPage> {
    const checked = checkQuery(query)
    return this.remote === undefined ? this.local.page(checked) : await this.remote.list(checked)
  }

  /**
   * Applies a message or a close to the local connections a filter picks, then asks the cluster
   * for the others': local targets are reached even when Redis is down (the call still rejects).
   */
  private async fanOut (filter: MemberFilter, action: Outgoing | OutgoingClose): Promise<FanOut> {
    const targets = this.local.select(filter)
    for (const member of targets) this.apply(member, action)
    const remote = this.remote === undefined ? 0 : await this.remote.fanOut(filter, action)
    return { connections: targets.length + remote }
  }

  /**
   * What the cluster's inbox delivers to a connection of this instance, and what a local fan-out
   * does to each target: a target that cannot take the message now is skipped and counted, not
   * buffered without bound.
   */
  apply (member: Member | undefined, action: Outgoing | OutgoingClose): void {
    // Gone since it was addressed (an inbox entry for a connection that closed meanwhile).
    if (member === undefined) {
      this.stats.skipped++
      return
    }
    if ('code' in action) return member.close(action)
    try {
      deliver(member, action)
      this.stats.pushed++
    } catch {
      this.stats.skipped++
    }
  }
}
