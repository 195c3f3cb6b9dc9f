import type { Registry } from 'prom-client'
import type { PerMessageDeflateOptions } from 'ws'
import type { BackendTlsOptions } from './tls'

/* The public types of backends — one URL, a pool, or a pool found through DNS — and of watching them. */

/** How a pool picks the endpoint for a new connection (see the README's Pools section). */
export type BalanceMode = 'round-robin' | 'least-connections' | 'hash-sub'

/**
 * Passive health (outlier ejection): `failures` consecutive connect failures take an endpoint out
 * of its pool for `ejectTime` ms, doubled on each ejection in a row up to `maxEjectTime`; it then
 * comes back on probation, where one more failure ejects it again and one success restores it.
 */
export interface HealthOptions {
  /** Consecutive connect failures (unreachable, 5xx, timeout) that eject an endpoint. Default 3. */
  failures?: number
  /** Milliseconds of the first ejection. Default 10000. */
  ejectTime?: number
  /** Longest ejection in milliseconds, however often it failed. Default 300000. */
  maxEjectTime?: number
}

/**
 * Active health: each endpoint is probed every `interval` ms — a WebSocket handshake (closed at
 * once with 1000), or an HTTP GET of `httpPath` when given. A probe that fails counts as a connect
 * failure; one that succeeds brings an ejected endpoint back on probation.
 */
export interface ProbeOptions {
  /** Milliseconds between probes of each endpoint. Default 10000. */
  interval?: number
  /** Milliseconds a probe may take. Default 2000. */
  timeout?: number
  /** Probe with an HTTP GET of this path (2xx or 3xx is healthy) instead of a WebSocket handshake. */
  httpPath?: string
}

/**
 * One backend: where it is and how to connect to it. Exactly one of `url` (one endpoint), `urls`
 * (a pool) and `dns` (a pool discovered through DNS) is given.
 */
export interface BackendConfig extends BackendTlsOptions {
  /** `ws:` or `wss:` URL; the client's query string is appended to it. */
  url?: string
  /** A pool: several `ws:`/`wss:` URLs of replicas of one backend. */
  urls?: string[]
  /**
   * A pool found through DNS: `ws://name:port/path` (or `wss:`) resolves the name's A and AAAA
   * records, `dns+srv://_service._tcp.name/path` (or `dns+srvs:` for `wss:`) its SRV records
   * (priority, weight, port). Re-resolved at the records' TTL, clamped by the gateway's `dns` option.
   */
  dns?: string
  /** How a pool picks an endpoint. Default `'round-robin'`. */
  balance?: BalanceMode
  /** Outlier ejection settings, or `false` to never eject. */
  health?: HealthOptions | false
  /** Active health probes; off unless given. */
  probe?: ProbeOptions
  /** Extra headers sent on the handshake to this backend (after the client's, before `rewriteRequestHeaders`). */
  headers?: Record<string, string>
  /** Offer permessage-deflate to this backend (default off). */
  perMessageDeflate?: boolean | PerMessageDeflateOptions
  /** Largest message accepted from this backend, in bytes (default: the gateway's `maxPayload`). */
  maxPayload?: number
}

/** A backend as written in the options: a URL string or a full config. */
export type BackendOption = string | BackendConfig

/** Where a backend's endpoints come from: a fixed list, DNS A/AAAA records, or DNS SRV records. */
export type EndpointSource =
  | { readonly kind: 'static', readonly urls: readonly URL[] }
  | { readonly kind: 'dns', readonly url: URL }
  | { readonly kind: 'srv', readonly name: string, readonly protocol: 'ws:' | 'wss:', readonly path: string }

/** A validated backend, ready to connect to. */
export interface ResolvedBackend {
  readonly id: string
  readonly source: EndpointSource
  readonly balance: BalanceMode
  readonly health: Readonly<Required<HealthOptions>> | false
  readonly probe: Readonly<ProbeOptions & { interval: number, timeout: number }> | undefined
  readonly headers: Readonly<Record<string, string>>
  readonly perMessageDeflate: boolean | PerMessageDeflateOptions
  readonly maxPayload: number
  readonly tls: BackendTlsOptions
}

/** The gateway's DNS client for `dns` backends. */
export interface DnsOptions {
  /** Name servers (`'127.0.0.1:5353'`, `'[::1]:53'`); default: the system's. */
  servers?: string[]
  /** Shortest time between two resolutions of a name, in ms, whatever the TTL. Default 1000. */
  minInterval?: number
  /** Longest time between two resolutions of a name, in ms, whatever the TTL. Default 60000. */
  maxInterval?: number
  /** Milliseconds one DNS query may take before it is retried. Default 2000. */
  timeout?: number
  /** Tries of each query per name server. Default 2. */
  tries?: number
}

/** Prometheus metrics (prom-client). */
export interface MetricsOptions {
  /** Registry the gateway's series are registered in. Default: prom-client's default registry. */
  registry?: Registry
  /** Adds a GET route with this path answering the registry's exposition text. Default: none. */
  route?: string
}
