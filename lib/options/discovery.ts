import { Resolver } from 'node:dns/promises'
import { checkInteger, checkKeys, checkTimeout, fail, isPlainObject } from './check'
import { DEFAULT_DNS } from './defaults'
import type { MetricsOptions, ResolvedOptions } from './types'

/* The gateway-wide options of pools and their watching: the DNS client, and the metrics. */

const DNS_KEYS = new Set(['servers', ...Object.keys(DEFAULT_DNS)])

/** Validates `dns` (the DNS client of `dns` backends). */
export function resolveDns (input: unknown): ResolvedOptions['dns'] {
  if (input === undefined) return DEFAULT_DNS
  if (!isPlainObject(input)) fail('dns must be an object')
  checkKeys(input, DNS_KEYS, 'dns.')
  const { servers } = input
  if (servers !== undefined) {
    // Node's own parser is the judge of what it will accept later.
    try {
      if (!Array.isArray(servers) || servers.length === 0) throw new Error('empty')
      new Resolver().setServers(servers)
    } catch {
      fail('dns.servers must be a non-empty array of IP addresses, each with an optional port ("127.0.0.1:53", "[::1]:53")')
    }
  }
  const minInterval = checkTimeout(input, 'minInterval', DEFAULT_DNS.minInterval, 1, false, 'dns.')
  return Object.freeze({
    servers: servers === undefined ? undefined : Object.freeze([...servers as string[]]),
    minInterval,
    maxInterval: checkTimeout(input, 'maxInterval', Math.max(minInterval, DEFAULT_DNS.maxInterval), minInterval, false, 'dns.'),
    timeout: checkTimeout(input, 'timeout', DEFAULT_DNS.timeout, 1, false, 'dns.'),
    tries: checkInteger(input, 'tries', DEFAULT_DNS.tries, 1, 'dns.')
  })
}

const METRICS_KEYS = new Set(['registry', 'route'])

/** Validates `metrics`: off, `true`, or `{ registry?, route? }`. */
export function resolveMetrics (input: unknown): ResolvedOptions['metrics'] {
  if (input === undefined) return undefined
  if (input === true) return Object.freeze({})
  if (!isPlainObject(input)) fail('metrics must be true or an object')
  checkKeys(input, METRICS_KEYS, 'metrics.')
  const { registry, route } = input
  if (registry !== undefined && (!isPlainObject(registry) || typeof registry.registerMetric !== 'function' || typeof registry.metrics !== 'function')) {
    fail('metrics.registry must be a prom-client Registry')
  }
  if (route !== undefined && (typeof route !== 'string' || !route.startsWith('/'))) fail('metrics.route must be a string starting with "/"')
  return Object.freeze({ registry: registry as MetricsOptions['registry'], route })
}
