import type { RelayEngine } from '../options/types'
import { addMessageStats, emptyMessageStats, type MessageStats } from '../messages/stats'
import type { Connection, Traffic } from '../relay/types'

/** How `fastify.close()` ends a gateway's connections. */
export interface ShutdownSettings {
  readonly code: number
  readonly drainTimeout: number
  readonly closeTimeout: number
}

/** Counters of one gateway registration (or of all of them together). */
export interface GatewayStats {
  /** Connections relaying now. */
  open: number
  /** Connections relayed since start, open ones included. */
  total: number
  /** Upgrades refused, by error code (e.g. `FST_WS_GATEWAY_NO_TOKEN`). */
  rejected: Record<string, number>
  /** Messages and bytes received from clients. */
  fromClient: Traffic
  /** Messages and bytes received from backends. */
  fromBackend: Traffic
  /** Client messages, pings and pongs dropped by the rate limit (`onExceeded: 'drop'`). */
  dropped: number
  /** Connections relayed since start by each engine, open ones included. */
  engines: Record<RelayEngine, number>
  /** Message mode's counters (only for registrations in message mode, and in the totals when any is). */
  messages?: MessageStats
}

/** What `fastify.wsGateway.stats()` returns: the totals, and the same per registered path. */
export interface WsGatewayStats extends GatewayStats {
  byPath: Record<string, GatewayStats>
}

function addTraffic (into: Traffic, from: Traffic): void {
  into.frames += from.frames
  into.bytes += from.bytes
}

/** The heartbeat's groups: at most this many, each pinged at least this many ms after the one before. */
const HEARTBEAT_GROUPS = 100
const HEARTBEAT_STEP = 10
/** Spreads new connections evenly over the groups, whatever their number (a Weyl sequence). */
const GOLDEN_RATIO = (Math.sqrt(5) - 1) / 2

/**
 * The live relays of one gateway registration: counts them, runs the one heartbeat timer they
 * share (one timer per gateway, not per connection, keeps idle connections cheap), and closes
 * them on shutdown.
 *
 * The heartbeat is spread over its interval rather than pinging every connection in one tick
 * (20,000 writes at once at 10,000 connections): connections are put in up to 100 groups, and
 * each step of the timer pings one group, so each connection is pinged once per interval.
 */
export class Registry {
  /** Every live relay, and the heartbeat group it is in. */
  private readonly relays = new Map<Connection, Set<Connection> | undefined>()
  private readonly ended = { fromClient: { frames: 0, bytes: 0 }, fromBackend: { frames: 0, bytes: 0 }, dropped: 0 }
  private readonly engines: Record<RelayEngine, number> = { passthrough: 0, ws: 0 }
  private readonly rejected: Record<string, number> = {}
  private total = 0
  private readonly groups: Array<Set<Connection>>
  private step = 0
  private heartbeatTimer: NodeJS.Timeout | undefined
  private onEmpty: (() => void) | undefined
  /** Set once `fastify.close()` has begun: no new connection is taken. */
  closing = false
  /** A message-mode registration's counters, reported with the rest. */
  messageStats: MessageStats | undefined

  constructor (private readonly heartbeatInterval: number) {
    const groups = Math.min(HEARTBEAT_GROUPS, Math.max(1, Math.floor(heartbeatInterval / HEARTBEAT_STEP)))
    this.groups = heartbeatInterval > 0 ? Array.from({ length: groups }, () => new Set()) : []
  }

  add (relay: Connection): void {
    this.total++
    // Message mode relays nothing: its connections are counted in `messages`.
    if (relay.engineName !== 'messages') this.engines[relay.engineName]++
    if (this.groups.length === 0) {
      this.relays.set(relay, undefined)
      return
    }
    const group = this.groups[Math.floor(((this.total * GOLDEN_RATIO) % 1) * this.groups.length)]
    group.add(relay)
    this.relays.set(relay, group)
    if (this.heartbeatTimer === undefined) {
      this.heartbeatTimer = setInterval(() => this.heartbeat(), this.heartbeatInterval / this.groups.length).unref()
    }
  }

  remove (relay: Connection): void {
    this.relays.get(relay)?.delete(relay)
    this.relays.delete(relay)
    addTraffic(this.ended.fromClient, relay.client.traffic)
    addTraffic(this.ended.fromBackend, relay.backend.traffic)
    this.ended.dropped += relay.dropped
    if (this.relays.size === 0) {
      clearInterval(this.heartbeatTimer)
      this.heartbeatTimer = undefined
      this.onEmpty?.()
    }
  }

  reject (code: string): void {
    this.rejected[code] = (this.rejected[code] ?? 0) + 1
  }

  /** One step of the heartbeat: the next group's connections are pinged (or ended, see `Connection.heartbeat`). */
  private heartbeat (): void {
    for (const relay of this.groups[this.step]) relay.heartbeat()
    this.step = (this.step + 1) % this.groups.length
  }

  stats (): GatewayStats {
    const stats = {
      open: this.relays.size,
      total: this.total,
      rejected: { ...this.rejected },
      fromClient: { ...this.ended.fromClient },
      fromBackend: { ...this.ended.fromBackend },
      dropped: this.ended.dropped,
      engines: { ...this.engines },
      ...(this.messageStats === undefined ? {} : { messages: structuredClone(this.messageStats) })
    }
    for (const relay of this.relays.keys()) {
      addTraffic(stats.fromClient, relay.client.traffic)
      addTraffic(stats.fromBackend, relay.backend.traffic)
      stats.dropped += relay.dropped
    }
    return stats
  }

  /**
   * Closes every connection with `code`, client leg first (see `Connection.shutdown`), their close
   * frames spread evenly over `drainTimeout` ms so clients don't all reconnect at once, and
   * resolves once all are closed; what is still open `closeTimeout` ms after that is terminated.
   */
  async shutdown ({ code, drainTimeout, closeTimeout }: ShutdownSettings): Promise<void> {
    this.closing = true
    if (this.relays.size === 0) return
    const empty = new Promise<void>((resolve) => { this.onEmpty = resolve })
    const step = drainTimeout / this.relays.size
    const timers = [...this.relays.keys()].map((relay, i) => setTimeout(() => relay.shutdown(code, 'server shutting down'), i * step))
    timers.push(setTimeout(() => {
      for (const relay of this.relays.keys()) relay.terminate()
    }, drainTimeout + closeTimeout))
    await empty
    for (const timer of timers) clearTimeout(timer)
  }
}

/** Adds up the stats of several registrations. */
export function sumStats (byPath: Record<string, GatewayStats>): WsGatewayStats {
  const sum: WsGatewayStats = { open: 0, total: 0, rejected: {}, fromClient: { frames: 0, bytes: 0 }, fromBackend: { frames: 0, bytes: 0 }, dropped: 0, engines: { passthrough: 0, ws: 0 }, byPath }
  for (const stats of Object.values(byPath)) {
    sum.open += stats.open
    sum.total += stats.total
    for (const [code, count] of Object.entries(stats.rejected)) sum.rejected[code] = (sum.rejected[code] ?? 0) + count
    addTraffic(sum.fromClient, stats.fromClient)
    addTraffic(sum.fromBackend, stats.fromBackend)
    sum.dropped += stats.dropped
    sum.engines.passthrough += stats.engines.passthrough
    sum.engines.ws += stats.engines.ws
    if (stats.messages !== undefined) {
      sum.messages ??= emptyMessageStats()
      addMessageStats(sum.messages, stats.messages)
    }
  }
  return sum
}
