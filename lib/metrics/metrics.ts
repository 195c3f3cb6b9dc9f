import { Counter, Gauge, Histogram, type LabelValues, type Registry } from 'prom-client'
import type { BackendStats, GatewayStats } from '../registry/registry'
import type { ClusterStats } from '../registry/types'
import type { Connection } from '../relay/types'
import type { EndpointStates } from '../upstream/pool'

/** What one gateway registration shows to the metrics, read at each scrape. */
export interface MetricsSource {
  readonly path: string
  stats: () => GatewayStats
  /** Endpoint states by backend ID. */
  endpointStates: () => Map<string, EndpointStates>
  /** Ejections so far by backend ID. */
  readonly ejections: ReadonlyMap<string, number>
  /** The app's cluster link's counters, when it has `cluster`. */
  cluster: () => ClusterStats | undefined
}

type Labels = 'path' | 'backend'
const LABELS: Labels[] = ['path', 'backend']

/** Buckets in seconds: handshakes are milliseconds to a few seconds (`connectTimeout`). */
const HANDSHAKE_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]
/** Buckets in seconds: connections last from a second to a day. */
const DURATION_BUCKETS = [1, 5, 15, 60, 300, 900, 3600, 14400, 86400]

/**
 * The gateway's own reasons for ending a connection, as labels. Any other reason came with a close
 * through the registry API (`fastify.wsGateway.close`/`closeUser`): the app's words, counted as
 * `api` so that they never become labels of their own.
 */
const POLICY_REASONS: Readonly<Record<string, string>> = {
  'rate limit': 'rate_limit',
  'slow consumer': 'slow_consumer',
  'idle timeout': 'idle_timeout',
  'token expired': 'token_expired'
}

/**
 * Application close codes (3000–4999) are bucketed by thousand: an app may use hundreds, and each
 * would be a series per backend.
 */
export function closeCodeLabel (code: number): string {
  return code >= 3000 ? `${Math.floor(code / 1000)}xxx` : String(code)
}

/**
 * The gateway's Prometheus series in one registry, shared by every registration (and every app)
 * that registers there: each adds a `MetricsSource`. Counters that only grow with traffic are read
 * from the registries' stats at scrape time, so the hot path has no metrics code and `stats()`
 * and the series always agree; events (handshakes, closes) are counted as they happen.
 */
export class GatewayMetrics {
  readonly sources = new Set<MetricsSource>()
  readonly handshakes: Counter<Labels | 'status' | 'code'>
  readonly handshakeSeconds: Histogram<Labels>
  readonly connectionSeconds: Histogram<Labels>
  readonly closes: Counter<Labels | 'side' | 'code'>
  readonly policyCloses: Counter<Labels | 'reason'>

  constructor (registry: Registry) {
    const registers = [registry]
    const sources = this.sources
    /** A series whose values are read from the registrations at each scrape. */
    const collected = (Kind: typeof Gauge | typeof Counter, name: string, help: string, labelNames: string[], read: () => Iterable<[LabelValues<string>, number]>): void => {
      const metric: Gauge | Counter = new Kind({
        name,
        help,
        labelNames,
        registers,
        collect () {
          metric.reset()
          for (const [labels, value] of read()) metric.inc(labels, value)
        }
      })
    }
    /** Per backend of every registration, from its stats. */
    function * perBackend (...values: Array<[Record<string, string>, (stats: BackendStats) => number]>): Iterable<[LabelValues<string>, number]> {
      for (const source of sources) {
        for (const [backend, stats] of Object.entries(source.stats().byBackend)) {
          for (const [labels, value] of values) yield [{ path: source.path, backend, ...labels }, value(stats)]
        }
      }
    }
    collected(Gauge, 'ws_gateway_connections_open', 'Connections relaying now', LABELS, () => perBackend([{}, (stats) => stats.open]))
    for (const [unit, key] of [['messages', 'frames'], ['bytes', 'bytes']] as const) {
      collected(Counter, `ws_gateway_${unit}_total`, `Data ${unit} received, by direction`, [...LABELS, 'direction'], () => perBackend(
        [{ direction: 'from_client' }, (stats) => stats.fromClient[key]],
        [{ direction: 'from_backend' }, (stats) => stats.fromBackend[key]]
      ))
    }
    collected(Counter, 'ws_gateway_dropped_messages_total', 'Client messages dropped by the rate limit', LABELS, () => perBackend([{}, (stats) => stats.dropped]))
    collected(Gauge, 'ws_gateway_endpoints', 'Endpoints of each backend pool by state', [...LABELS, 'state'], function * () {
      for (const source of sources) {
        for (const [backend, states] of source.endpointStates()) {
          for (const [state, count] of Object.entries(states)) yield [{ path: source.path, backend, state }, count]
        }
      }
    })
    /** Per node of the apps with a cluster (several registrations of one app share one node). */
    function * perNode (value: (stats: ClusterStats) => number): Iterable<[LabelValues<string>, number]> {
      const nodes = new Map<string, ClusterStats>()
      for (const source of sources) {
        const stats = source.cluster()
        if (stats !== undefined) nodes.set(stats.node, stats)
      }
      for (const [node, stats] of nodes) yield [{ node }, value(stats)]
    }
    collected(Gauge, 'ws_gateway_cluster_redis_up', 'Whether the last Redis exchange of the cluster registry worked (1) or not (0)', ['node'], () => perNode((s) => Number(s.redisUp)))
    collected(Counter, 'ws_gateway_cluster_outages_total', 'Times Redis went from answering to not answering', ['node'], () => perNode((s) => s.outages))
    collected(Counter, 'ws_gateway_cluster_remote_sends_total', 'Messages, closes and fan-outs appended to other nodes\' inboxes', ['node'], () => perNode((s) => s.remoteSends))
    collected(Counter, 'ws_gateway_cluster_inbox_handled_total', 'Inbox entries this node handled', ['node'], () => perNode((s) => s.inboxHandled))
    collected(Gauge, 'ws_gateway_cluster_inbox_lag_seconds', 'From the last handled inbox entry\'s append to its handling', ['node'], () => perNode((s) => s.inboxLagMs / 1000))
    collected(Counter, 'ws_gateway_endpoint_ejections_total', 'Endpoints taken out of their pool by outlier ejection', LABELS, function * () {
      for (const source of sources) {
        for (const [backend, count] of source.ejections) yield [{ path: source.path, backend }, count]
      }
    })
    this.handshakes = new Counter({
      name: 'ws_gateway_handshakes_total',
      help: 'Upgrade requests by outcome: status 101, or the refusal status and error code (backend "" before one was found)',
      labelNames: [...LABELS, 'status', 'code'],
      registers
    })
    this.handshakeSeconds = new Histogram({
      name: 'ws_gateway_handshake_duration_seconds',
      help: 'From the upgrade request to the backend accepting (101s only)',
      labelNames: LABELS,
      buckets: HANDSHAKE_BUCKETS,
      registers
    })
    this.connectionSeconds = new Histogram({
      name: 'ws_gateway_connection_duration_seconds',
      help: 'How long relayed connections lasted',
      labelNames: LABELS,
      buckets: DURATION_BUCKETS,
      registers
    })
    this.closes = new Counter({
      name: 'ws_gateway_closes_total',
      help: 'Close codes each leg ended with (3xxx/4xxx bucketed)',
      labelNames: [...LABELS, 'side', 'code'],
      registers
    })
    this.policyCloses = new Counter({
      name: 'ws_gateway_policy_closes_total',
      help: 'Connections the gateway closed on its own, by reason',
      labelNames: [...LABELS, 'reason'],
      registers
    })
  }
}

const shared = new WeakMap<Registry, GatewayMetrics>()

/** What the route reports, for one registration. */
export class PathMetrics {
  constructor (private readonly metrics: GatewayMetrics, private readonly path: string) {}

  /**
   * An upgrade was refused before or at the backend, with this error code and status (Fastify
   * answers 500 for an error without one). `backend` is '' before one was found.
   */
  refused (backend: string, code: string, status: number | undefined): void {
    this.metrics.handshakes.inc({ path: this.path, backend, status: String(status ?? 500), code })
  }

  /** An upgrade completed `seconds` after it arrived. */
  accepted (backend: string, seconds: number): void {
    this.metrics.handshakes.inc({ path: this.path, backend, status: '101', code: '' })
    this.metrics.handshakeSeconds.observe({ path: this.path, backend }, seconds)
  }

  closed (backend: string, connection: Connection): void {
    const labels = { path: this.path, backend }
    this.metrics.connectionSeconds.observe(labels, (Date.now() - connection.openedAt) / 1000)
    // Both legs are closed by now, so both have a code.
    this.metrics.closes.inc({ ...labels, side: 'client', code: closeCodeLabel(connection.client.code as number) })
    this.metrics.closes.inc({ ...labels, side: 'backend', code: closeCodeLabel(connection.backend.code as number) })
    if (connection.policy !== undefined) this.metrics.policyCloses.inc({ ...labels, reason: POLICY_REASONS[connection.policy] ?? 'api' })
  }
}

/**
 * Adds a registration's series to `registry` (created there by the first registration) and
 * returns what its route reports to, and how to take the registration's series away again.
 */
export function attachMetrics (registry: Registry, source: MetricsSource): { path: PathMetrics, detach: () => void } {
  let metrics = shared.get(registry)
  if (metrics === undefined) shared.set(registry, metrics = new GatewayMetrics(registry))
  metrics.sources.add(source)
  const attached = metrics
  return { path: new PathMetrics(metrics, source.path), detach: () => attached.sources.delete(source) }
}
