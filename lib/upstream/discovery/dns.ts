import type { Resolver } from 'node:dns/promises'
import type { FastifyBaseLogger } from 'fastify'
import type { EndpointSource, ResolvedOptions } from '../../options/types'
import type { EndpointTarget } from '../pool'

type DnsSource = Exclude<EndpointSource, { kind: 'static' }>

/** Answers that mean "no such records" (NXDOMAIN, NODATA): an empty list, not an outage. */
const NO_RECORDS = new Set(['ENOTFOUND', 'ENODATA'])

interface Addresses {
  list: Array<{ address: string, family: 4 | 6 }>
  /** Smallest TTL among them, in seconds (Infinity when there are none). */
  ttl: number
}

/** A query's records, none for NXDOMAIN/NODATA; any other failure rejects. */
async function recordsOf<T> (query: Promise<T[]>): Promise<T[]> {
  try {
    return await query
  } catch (err) {
    if (NO_RECORDS.has((err as NodeJS.ErrnoException).code as string)) return []
    throw err
  }
}

/** A name's A and AAAA records; a failure (timeout, SERVFAIL, refused) rejects. */
async function addressesOf (resolver: Resolver, name: string): Promise<Addresses> {
  const [v4, v6] = await Promise.all([recordsOf(resolver.resolve4(name, { ttl: true })), recordsOf(resolver.resolve6(name, { ttl: true }))])
  const list = [...v4.map((record) => ({ ...record, family: 4 as const })), ...v6.map((record) => ({ ...record, family: 6 as const }))]
  return { list, ttl: Math.min(...list.map((record) => record.ttl)) }
}

/** `ws://name:port/path` → one endpoint per A/AAAA address, the URL keeping the name. */
async function resolveAddresses (resolver: Resolver, url: URL): Promise<{ targets: EndpointTarget[], ttl: number }> {
  const { list, ttl } = await addressesOf(resolver, url.hostname)
  const targets = list.map(({ address, family }) => ({ key: `${url.host}/${address}`, url, pinned: { address, family }, priority: 0, weight: 1 }))
  return { targets, ttl }
}

/**
 * `dns+srv://_ws._tcp.name/path` → one endpoint per SRV record and address of its target, with the
 * record's priority, weight and port. Node does not expose an SRV record's TTL, so the targets'
 * address TTLs set when to resolve again.
 */
async function resolveSrv (resolver: Resolver, source: Extract<DnsSource, { kind: 'srv' }>): Promise<{ targets: EndpointTarget[], ttl: number }> {
  const records = await recordsOf(resolver.resolveSrv(source.name))
  const resolved = await Promise.all(records.map(async (record) => ({ record, addresses: await addressesOf(resolver, record.name) })))
  const targets = resolved.flatMap(({ record, addresses }) => {
    const url = new URL(`${source.protocol}//${record.name}:${record.port}${source.path}`)
    return addresses.list.map(({ address, family }) => ({
      key: `${url.host}/${address}`, url, pinned: { address, family }, priority: record.priority, weight: record.weight
    }))
  })
  return { targets, ttl: Math.min(...resolved.map(({ addresses }) => addresses.ttl)) }
}

/** What discovery tells its backend. */
export interface DiscoveryEvents {
  /** A successful resolution, with every endpoint it found (maybe none). */
  onUpdate: (targets: EndpointTarget[]) => void
}

/**
 * Keeps a backend's endpoints in step with DNS: resolves at once, then again when the records'
 * TTL runs out, clamped to the gateway's `dns.minInterval`/`maxInterval`. A failed resolution
 * keeps the endpoints known so far (a DNS outage must not empty a pool) and is tried again after
 * `minInterval`; an answer with no records empties the pool (its endpoints drain).
 */
export class DnsDiscovery {
  private timer: NodeJS.Timeout | undefined
  private stopped = false
  /** Settles after the first resolution, whatever its outcome. */
  readonly ready: Promise<void>

  constructor (
    private readonly source: DnsSource,
    private readonly resolver: Resolver,
    private readonly settings: ResolvedOptions['dns'],
    private readonly log: FastifyBaseLogger,
    private readonly events: DiscoveryEvents
  ) {
    this.ready = this.resolve()
  }

  private async resolve (): Promise<void> {
    const answer = await (this.source.kind === 'srv' ? resolveSrv(this.resolver, this.source) : resolveAddresses(this.resolver, this.source.url))
      .catch((err: NodeJS.ErrnoException) => err)
    // A backend deleted or replaced meanwhile: its answer no longer matters.
    if (this.stopped) return
    let next = this.settings.minInterval
    if (answer instanceof Error) {
      this.log.warn({ code: answer.code }, 'ws gateway dns resolution failed; keeping the endpoints known')
    } else {
      this.events.onUpdate(answer.targets)
      if (Number.isFinite(answer.ttl)) next = Math.min(Math.max(answer.ttl * 1000, next), this.settings.maxInterval)
    }
    this.timer = setTimeout(() => { this.resolve() }, next).unref()
  }

  /** Stops resolving; a resolution under way is ignored when it ends. */
  stop (): void {
    this.stopped = true
    clearTimeout(this.timer)
  }
}
