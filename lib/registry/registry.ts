import type { RelayEngine } from '../options/types'
import { addMessageStats, emptyMessageStats, type MessageStats } from '../messages/stats'
import type { Connection, Traffic } from '../relay/types'

/** How `fastify.close()` ends a gateway's connections. */
export interface ShutdownSettings {
  readonly code: number
  readonly drainTimeout: number
  readonly closeTimeout: number
}

/** Connection counters of one backend (or of a whole registration). */
export interface BackendStats {
  /** Connections relaying now. */
  open: number
  /** Connections relayed since start, open ones included. */
  total: number
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

/** Counters of one gateway registration (or of all of them together). */
export interface GatewayStats extends BackendStats {
  /** Upgrades refused, by error code (e.g. `FST_WS_GATEWAY_NO_TOKEN`). */
  rejected: Record<string, number>
  /** The connection counters by backend ID (the sum over IDs is the registration's). */
  byBackend: Record<string, BackendStats>
}

/** What `fastify.wsGateway.stats()` returns: the totals, and the same per registered path. */
export interface WsGatewayStats extends GatewayStats {
  byPath: Record<string, GatewayStats>
}

function addTraffic (into: Traffic, from: Traffic): void {
  into.frames += from.frames
  into.bytes += from.bytes
}

function emptyStats (): BackendStats {
  return { open: 0, total: 0, fromClient: { frames: 0, bytes: 0 }, fromBackend: { frames: 0, bytes: 0 }, dropped: 0, engines: { passthrough: 0, ws: 0 } }
}

/** Adds `from` into `into`: a live relay's counters, or another backend's. */
function addStats (into: BackendStats, from: BackendStats): void {
  into.open += from.open
  into.total += from.total
  addTraffic(into.fromClient, from.fromClient)
  addTraffic(into.fromBackend, from.fromBackend)
  into.dropped += from.dropped
  into.engines.passthrough += from.engines.passthrough
  into.engines.ws += from.engines.ws
}

/** What a live relay adds to its backend's counters (its total and engine were counted when it was added). */
function liveStats (relay: Connection): BackendStats {
  return { ...emptyStats(), open: 1, fromClient: relay.client.traffic, fromBackend: relay.backend.traffic, dropped: relay.dropped }
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
  /** Every live relay, its backend ID, and the heartbeat group it is in. */
  private readonly relays = new Map<Connection, { backendId: string, group: Set<Connection> | undefined }>()
  /** By backend ID: the connections counted so far (total, engines) and the traffic of those that ended. */
  private readonly ended = new Map<string, BackendStats>()
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

  add (relay: Connection, backendId: string): void {
    this.total++
    const counted = this.endedOf(backendId)
    counted.total++
    // Message mode relays nothing: its connections are counted in `messages`.
    if (relay.engineName !== 'messages') counted.engines[relay.engineName]++
    if (this.groups.length === 0) {
      this.relays.set(relay, { backendId, group: undefined })
      return
    }
    const group = this.groups[Math.floor(((this.total * GOLDEN_RATIO) % 1) * this.groups.length)]
    group.add(relay)
    this.relays.set(relay, { backendId, group })
    if (this.heartbeatTimer === undefined) {
      this.heartbeatTimer = setInterval(() => this.heartbeat(), this.heartbeatInterval / this.groups.length).unref()
    }
  }

  private endedOf (backendId: string): BackendStats {
    let ended = this.ended.get(backendId)
    if (ended === undefined) this.ended.set(backendId, ended = emptyStats())
    return ended
  }

  remove (relay: Connection): void {
    const { backendId, group } = this.relays.get(relay) as { backendId: string, group: Set<Connection> | undefined }
    group?.delete(relay)
    this.relays.delete(relay)
    addStats(this.endedOf(backendId), { ...liveStats(relay), open: 0 })
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
    const byBackend: Record<string, BackendStats> = {}
    for (const [id, ended] of this.ended) addStats(byBackend[id] = emptyStats(), ended)
    for (const [relay, { backendId }] of this.relays) addStats(byBackend[backendId], liveStats(relay))
    const stats: GatewayStats = { ...emptyStats(), rejected: { ...this.rejected }, byBackend }
    for (const backend of Object.values(byBackend)) addStats(stats, backend)
    if (this.messageStats !== undefined) stats.messages = structuredClone(this.messageStats)
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
  const sum: WsGatewayStats = { ...emptyStats(), rejected: {}, byBackend: {}, byPath }
  for (const stats of Object.values(byPath)) {
    addStats(sum, stats)
    for (const [code, count] of Object.entries(stats.rejected)) sum.rejected[code] = (sum.rejected[code] ?? 0) + count
    for (const [id, backend] of Object.entries(stats.byBackend)) addStats(sum.byBackend[id] ??= emptyStats(), backend)
    if (stats.messages !== undefined) {
      sum.messages ??= emptyMessageStats()
      addMessageStats(sum.messages, stats.messages)
    }
  }
  return sum
}
