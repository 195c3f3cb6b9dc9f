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
  /** Client messages dropped by the rate limit (`onExceeded: 'drop'`). */
  dropped: number
}

/** What `fastify.wsGateway.stats()` returns: the totals, and the same per registered path. */
export interface WsGatewayStats extends GatewayStats {
  byPath: Record<string, GatewayStats>
}

function addTraffic (into: Traffic, from: Traffic): void {
  into.frames += from.frames
  into.bytes += from.bytes
}

/**
 * The live relays of one gateway registration: counts them, runs the one heartbeat timer they
 * share (one timer per gateway, not per connection, keeps idle connections cheap), and closes
 * them on shutdown.
 */
export class Registry {
  private readonly relays = new Set<Connection>()
  private readonly ended = { fromClient: { frames: 0, bytes: 0 }, fromBackend: { frames: 0, bytes: 0 }, dropped: 0 }
  private readonly rejected: Record<string, number> = {}
  private total = 0
  private heartbeatTimer: NodeJS.Timeout | undefined
  private onEmpty: (() => void) | undefined
  /** Set once `fastify.close()` has begun: no new connection is taken. */
  closing = false

  constructor (private readonly heartbeatInterval: number) {}

  add (relay: Connection): void {
    this.relays.add(relay)
    this.total++
    if (this.heartbeatInterval > 0 && this.heartbeatTimer === undefined) {
      this.heartbeatTimer = setInterval(() => this.heartbeat(), this.heartbeatInterval).unref()
    }
  }

  remove (relay: Connection): void {
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

  private heartbeat (): void {
    for (const relay of this.relays) relay.heartbeat()
  }

  stats (): GatewayStats {
    const stats = {
      open: this.relays.size,
      total: this.total,
      rejected: { ...this.rejected },
      fromClient: { ...this.ended.fromClient },
      fromBackend: { ...this.ended.fromBackend },
      dropped: this.ended.dropped
    }
    for (const relay of this.relays) {
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
    const timers = [...this.relays].map((relay, i) => setTimeout(() => relay.shutdown(code, 'server shutting down'), i * step))
    timers.push(setTimeout(() => {
      for (const relay of this.relays) relay.terminate()
    }, drainTimeout + closeTimeout))
    await empty
    for (const timer of timers) clearTimeout(timer)
  }
}

/** Adds up the stats of several registrations. */
export function sumStats (byPath: Record<string, GatewayStats>): WsGatewayStats {
  const sum: WsGatewayStats = { open: 0, total: 0, rejected: {}, fromClient: { frames: 0, bytes: 0 }, fromBackend: { frames: 0, bytes: 0 }, dropped: 0, byPath }
  for (const stats of Object.values(byPath)) {
    sum.open += stats.open
    sum.total += stats.total
    for (const [code, count] of Object.entries(stats.rejected)) sum.rejected[code] = (sum.rejected[code] ?? 0) + count
    addTraffic(sum.fromClient, stats.fromClient)
    addTraffic(sum.fromBackend, stats.fromBackend)
    sum.dropped += stats.dropped
  }
  return sum
}
