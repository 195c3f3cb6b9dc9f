import { Resolver } from 'node:dns/promises'
import type { FastifyBaseLogger, FastifyRequest } from 'fastify'
import { callApp } from '../callbacks'
import { BadGatewayError, UnknownBackendError } from '../errors'
import { resolveBackendConfig, resolveBackendEntry } from '../options/backend'
import type { ResolvedBackend, ResolvedOptions } from '../options/types'
import { DnsDiscovery } from './discovery/dns'
import type { PoolBackend } from './failover'
import { Pool, staticTargets, type EndpointStates } from './pool'
import { Prober } from './probe'

/** Backends a `resolveBackend` answer is kept for, so its pool keeps its state between connections. */
const RESOLVED_KEPT = 1000

/**
 * One backend at run time: its validated config, its pool of endpoints, and what keeps the pool
 * current (DNS discovery, active probes). `close` stops both and drains the pool: connections
 * already open keep running.
 */
export class Backend implements PoolBackend {
  readonly pool: Pool
  ready: Promise<void> | undefined
  private readonly discovery: DnsDiscovery | undefined
  private readonly prober: Prober | undefined

  constructor (public config: ResolvedBackend, resolver: Resolver, opts: ResolvedOptions, log: FastifyBaseLogger, onEject: () => void) {
    this.pool = new Pool(config, onEject)
    const { source } = config
    if (source.kind === 'static') {
      this.pool.update(staticTargets(source.urls))
    } else {
      const backendLog = log.child({ backendId: config.id })
      this.discovery = new DnsDiscovery(source, resolver, opts.dns, backendLog, {
        onUpdate: (targets) => {
          const { added, removed } = this.pool.update(targets)
          if (added + removed > 0) backendLog.info({ added, removed, endpoints: targets.length }, 'ws gateway backend endpoints changed')
        }
      })
      this.ready = this.discovery.ready.then(() => { this.ready = undefined })
    }
    if (config.probe !== undefined) this.prober = new Prober(this, config.probe)
  }

  /** Whether `other` would build the same pool (so this one, with its health state, can stay). */
  samePool (other: ResolvedBackend): boolean {
    const shape = (config: ResolvedBackend): string => JSON.stringify([config.source, config.balance, config.health, config.probe])
    return shape(this.config) === shape(other)
  }

  close (): void {
    this.discovery?.stop()
    this.prober?.stop()
    this.pool.drainAll()
  }
}

/**
 * The backends of one gateway registration: the configured map (changed live by `setBackend` and
 * `deleteBackend`), then `resolveBackend` for IDs not in it. A resolver's answer is kept per ID
 * (the most recent `RESOLVED_KEPT` IDs) while it keeps describing the same pool, so round-robin turns
 * and health survive from one connection to the next.
 */
export class BackendTable {
  private readonly configured = new Map<string, Backend>()
  /** Backends announced on Redis (`announceBackend`), when the app has `cluster`. */
  private readonly announced = new Map<string, Backend>()
  private readonly resolved = new Map<string, Backend>()
  private readonly resolver: Resolver
  /** Ejections so far, by backend ID (kept across replacements: the metric is a counter). */
  readonly ejections = new Map<string, number>()

  constructor (private readonly opts: ResolvedOptions, private readonly log: FastifyBaseLogger) {
    this.resolver = new Resolver({ timeout: opts.dns.timeout, tries: opts.dns.tries })
    if (opts.dns.servers !== undefined) this.resolver.setServers(opts.dns.servers)
    for (const config of opts.backends.values()) this.set(config)
  }

  private create (config: ResolvedBackend): Backend {
    return new Backend(config, this.resolver, this.opts, this.log, () => {
      this.ejections.set(config.id, (this.ejections.get(config.id) ?? 0) + 1)
    })
  }

  /** Adds or replaces a backend; a replaced one drains (its open connections run on). */
  set (config: ResolvedBackend): void {
    this.configured.get(config.id)?.close()
    this.configured.set(config.id, this.create(config))
  }

  /** Removes a backend (its open connections run on); false if there was none. */
  delete (id: string): boolean {
    const backend = this.configured.get(id)
    backend?.close()
    return this.configured.delete(id)
  }

  /**
   * The backend for an ID that is not `known`, from `resolveBackend`. A resolver that throws or
   * returns a malformed entry is the app's fault, not the client's: it is logged and answered with
   * 502, without its message (`callApp`).
   */
  async resolve (request: FastifyRequest, id: string): Promise<Backend> {
    const { resolveBackend } = this.opts
    if (resolveBackend === undefined) throw new UnknownBackendError(id)
    const config = await callApp(request, 'resolveBackend', async () => {
      const option = await resolveBackend(id, request)
      return option === undefined ? undefined : resolveBackendConfig(id, option, `resolveBackend("${id}")`, this.opts.maxPayload)
    }, () => new BadGatewayError())
    if (config === undefined) throw new UnknownBackendError(id)
    return this.keepResolved(config)
  }

  /** A configured or announced backend, without waiting for anything (undefined for others: see `resolve`). */
  known (id: string): Backend | undefined {
    return this.configured.get(id) ?? this.announced.get(id)
  }

  private keepResolved (config: ResolvedBackend): Backend {
    const kept = this.resolved.get(config.id)
    this.resolved.delete(config.id) // re-inserted below: the map's order is least recently used first
    let backend = kept
    if (kept !== undefined && kept.samePool(config)) kept.config = config
    else {
      kept?.close()
      backend = this.create(config)
    }
    this.resolved.set(config.id, backend as Backend)
    if (this.resolved.size > RESOLVED_KEPT) {
      const [oldestId, oldest] = this.resolved.entries().next().value as [string, Backend]
      oldest.close()
      this.resolved.delete(oldestId)
    }
    return backend as Backend
  }

  /**
   * The backends announced on Redis, by ID with their URLs: each becomes a round-robin pool of
   * them (an ID also configured keeps its configuration). Endpoints no longer announced drain;
   * a URL that is not `ws:`/`wss:` (not written by `announceBackend`) is skipped.
   */
  announce (entries: ReadonlyMap<string, readonly string[]>): void {
    for (const [id, backend] of this.announced) {
      if (entries.has(id)) continue
      backend.close()
      this.announced.delete(id)
    }
    for (const [id, hrefs] of entries) {
      const urls = hrefs.filter((href) => /^wss?:\/\//.test(href))
      const known = this.announced.get(id)
      if (known !== undefined) {
        const { added, removed } = known.pool.update(staticTargets(urls.map((href) => new URL(href))))
        if (added + removed > 0) this.log.info({ backendId: id, added, removed, endpoints: urls.length }, 'ws gateway backend endpoints changed')
        continue
      }
      try {
        this.announced.set(id, this.create(resolveBackendEntry(id, { urls }, `announced backend "${id}"`, this.opts.maxPayload)))
      } catch (err) {
        this.log.warn({ err, backendId: id }, 'ws gateway announced backend ignored')
      }
    }
  }

  /** Endpoint states of every backend with a pool, by ID (for the metrics). */
  states (): Map<string, EndpointStates> {
    const states = new Map<string, EndpointStates>()
    for (const backends of [this.resolved, this.announced, this.configured]) {
      for (const [id, backend] of backends) states.set(id, backend.pool.states())
    }
    return states
  }

  /** Stops discovery and probes of every backend (the app is closing). */
  close (): void {
    for (const backend of [...this.configured.values(), ...this.announced.values(), ...this.resolved.values()]) backend.close()
  }
}
