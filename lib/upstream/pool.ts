import type { ResolvedBackend } from '../options/types'
import { createBalancer, hash32, type Balancer } from './balance'
import { Health, type HealthState } from './health'

/** One place a backend can be reached: its URL and, for discovered endpoints, the address to dial. */
export interface EndpointTarget {
  /** Identifies it across re-resolutions: the URL, or for DNS the name, address and port. */
  readonly key: string
  /** Where to connect; for discovered endpoints the host is the DNS name (Host header, TLS name). */
  readonly url: URL
  /** For discovered endpoints: the IP address dialed instead of looking the URL's host up. */
  readonly pinned?: { readonly address: string, readonly family: 4 | 6 }
  /** Lower is preferred; higher priorities are used only when no lower one can take connections. */
  readonly priority: number
  /** Share of connections within its priority. */
  readonly weight: number
}

/** Endpoints for listed URLs: one each, keyed by the URL, all of one priority and weight. */
export function staticTargets (urls: readonly URL[]): EndpointTarget[] {
  return urls.map((url) => ({ key: url.href, url, priority: 0, weight: 1 }))
}

/** What the metrics show of a pool: endpoints by state (draining counted apart). */
export type EndpointStates = Record<HealthState | 'draining', number>

/** An endpoint of a pool with its live state. */
export class Endpoint {
  /** Connections open or being opened through it. */
  active = 0
  /** Removed by discovery (or its backend replaced): no new connections, open ones run on. */
  draining = false
  current = 0
  readonly hash: number
  readonly health: Health

  constructor (public target: EndpointTarget, settings: ResolvedBackend['health'], onEject: () => void) {
    this.hash = hash32(target.key)
    this.health = new Health(settings, onEject)
  }

  get weight (): number {
    // SRV weight 0 means "very small chance" (RFC 2782), not never.
    return this.target.weight === 0 ? 0.01 : this.target.weight
  }
}

/**
 * The endpoints of one backend and how a new connection picks among them: by priority, then by the
 * balance mode, skipping ejected and draining endpoints. Discovery replaces the list with `update`;
 * an endpoint that left it drains and is forgotten once its last connection has ended.
 */
export class Pool {
  private readonly endpoints = new Map<string, Endpoint>()
  private readonly balance: Balancer

  constructor (private readonly backend: ResolvedBackend, private readonly onEject: () => void) {
    this.balance = createBalancer(backend.balance)
  }

  /** Sets the endpoints; returns how many were added and how many began draining. */
  update (targets: readonly EndpointTarget[]): { added: number, removed: number } {
    const keys = new Set(targets.map((target) => target.key))
    let added = 0
    let removed = 0
    for (const target of targets) {
      const known = this.endpoints.get(target.key)
      if (known === undefined || known.draining) added++
      if (known === undefined) this.endpoints.set(target.key, new Endpoint(target, this.backend.health, this.onEject))
      else Object.assign(known, { target, draining: false })
    }
    for (const endpoint of this.endpoints.values()) {
      if (keys.has(endpoint.target.key) || endpoint.draining) continue
      removed++
      this.drain(endpoint)
    }
    return { added, removed }
  }

  /** Drains every endpoint: the backend was replaced or deleted. */
  drainAll (): void {
    for (const endpoint of this.endpoints.values()) this.drain(endpoint)
  }

  private drain (endpoint: Endpoint): void {
    endpoint.draining = true
    if (endpoint.active === 0) this.endpoints.delete(endpoint.target.key)
  }

  /** The endpoints that may be tried for a new connection, in the order to try them. */
  candidates (sub: string | undefined): Endpoint[] {
    const open = [...this.endpoints.values()].filter((endpoint) => !endpoint.draining)
    const available = open.filter((endpoint) => endpoint.health.state !== 'ejected')
    // When every endpoint is ejected, ejection is a guess that has stopped helping: try them all
    // rather than refuse everyone (Envoy's "panic" mode).
    return this.ordered(available.length > 0 ? available : open, sub)
  }

  private ordered (endpoints: Endpoint[], sub: string | undefined): Endpoint[] {
    const priorities = [...new Set(endpoints.map((endpoint) => endpoint.target.priority))].sort((a, b) => a - b)
    return priorities.flatMap((priority) => this.balance(endpoints.filter((endpoint) => endpoint.target.priority === priority), sub))
  }

  /** A connection through `endpoint` begins (counted from the first attempt). */
  acquire (endpoint: Endpoint): void {
    endpoint.active++
  }

  /** A connection through `endpoint` ended or failed to open. */
  release (endpoint: Endpoint): void {
    endpoint.active--
    if (endpoint.draining && endpoint.active === 0 && this.endpoints.get(endpoint.target.key) === endpoint) {
      this.endpoints.delete(endpoint.target.key)
    }
  }

  /** Every endpoint known, draining ones included (the probes skip those). */
  list (): Endpoint[] {
    return [...this.endpoints.values()]
  }

  states (): EndpointStates {
    const states: EndpointStates = { healthy: 0, probation: 0, ejected: 0, draining: 0 }
    for (const endpoint of this.endpoints.values()) states[endpoint.draining ? 'draining' : endpoint.health.state]++
    return states
  }
}
