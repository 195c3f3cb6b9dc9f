import { isIP } from 'node:net'
import { checkChoice, checkInteger, checkKeys, checkTimeout, fail, isPlainObject } from './check'
import { DEFAULT_BALANCE, DEFAULT_HEALTH, DEFAULT_PROBE_INTERVAL, DEFAULT_PROBE_TIMEOUT } from './defaults'
import type { BalanceMode, EndpointSource, ResolvedBackend } from './types'

/* The pool half of a backend config: where its endpoints come from and how they are chosen. */

const BALANCE_MODES: readonly BalanceMode[] = ['round-robin', 'least-connections', 'hash-sub']
const HEALTH_KEYS = new Set(Object.keys(DEFAULT_HEALTH))
const PROBE_KEYS = new Set(['interval', 'timeout', 'httpPath'])

/** A `ws:`/`wss:` URL without a fragment, or a message naming `where`. */
export function wsUrl (value: unknown, where: string): URL {
  let url: URL
  try {
    url = new URL(String(value))
  } catch {
    fail(`${where} must be a ws: or wss: URL`)
  }
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') fail(`${where} must be a ws: or wss: URL`)
  if (url.hash !== '') fail(`${where} must not have a #fragment`)
  return url
}

/** `dns+srv://_ws._tcp.name/path` (ws:) or `dns+srvs://…` (wss:). */
function srvSource (value: string, where: string): EndpointSource {
  const url = new URL(value)
  if (url.hostname === '' || url.port !== '' || url.username !== '' || url.hash !== '') {
    fail(`${where} must be dns+srv://_service._proto.name[/path] (no port, credentials or #fragment)`)
  }
  return { kind: 'srv', name: url.hostname, protocol: url.protocol === 'dns+srvs:' ? 'wss:' : 'ws:', path: `${url.pathname}${url.search}` }
}

/** Exactly one of `url`, `urls` and `dns`, as an endpoint source. */
export function endpointSource (config: Record<string, unknown>, where: string): EndpointSource {
  const given = ['url', 'urls', 'dns'].filter((name) => config[name] !== undefined)
  if (given.length !== 1) fail(`${where} must have exactly one of url, urls and dns`)
  if (config.url !== undefined) return { kind: 'static', urls: [wsUrl(config.url, `${where}.url`)] }
  if (config.urls !== undefined) {
    if (!Array.isArray(config.urls) || config.urls.length === 0) fail(`${where}.urls must be a non-empty array of ws: or wss: URLs`)
    const urls = config.urls.map((url, i) => wsUrl(url, `${where}.urls[${i}]`))
    if (new Set(urls.map((url) => url.href)).size !== urls.length) fail(`${where}.urls must not repeat a URL`)
    return { kind: 'static', urls }
  }
  const dns = String(config.dns)
  if (/^dns\+srvs?:\/\//.test(dns)) return srvSource(dns, `${where}.dns`)
  const url = wsUrl(dns, `${where}.dns`)
  if (url.username !== '' || url.password !== '') fail(`${where}.dns must not carry credentials`)
  if (isIP(url.hostname.replace(/^\[(.*)\]$/, '$1')) !== 0) fail(`${where}.dns needs a host name to resolve (use url for an address)`)
  return { kind: 'dns', url }
}

/** Balance mode, outlier ejection and active probes of a backend config. */
export function poolSettings (config: Record<string, unknown>, where: string): Pick<ResolvedBackend, 'balance' | 'health' | 'probe'> {
  const balance = checkChoice(config, 'balance', DEFAULT_BALANCE, BALANCE_MODES, `${where}.`)
  const health = config.health ?? {}
  let resolvedHealth: ResolvedBackend['health'] = false
  if (health !== false) {
    if (!isPlainObject(health)) fail(`${where}.health must be an object or false`)
    checkKeys(health, HEALTH_KEYS, `${where}.health.`)
    const ejectTime = checkTimeout(health, 'ejectTime', DEFAULT_HEALTH.ejectTime, 1, false, `${where}.health.`)
    resolvedHealth = Object.freeze({
      failures: checkInteger(health, 'failures', DEFAULT_HEALTH.failures, 1, `${where}.health.`),
      ejectTime,
      maxEjectTime: checkTimeout(health, 'maxEjectTime', Math.max(ejectTime, DEFAULT_HEALTH.maxEjectTime), ejectTime, false, `${where}.health.`)
    })
  }
  let probe: ResolvedBackend['probe']
  if (config.probe !== undefined) {
    if (!isPlainObject(config.probe)) fail(`${where}.probe must be an object`)
    checkKeys(config.probe, PROBE_KEYS, `${where}.probe.`)
    const { httpPath } = config.probe
    if (httpPath !== undefined && (typeof httpPath !== 'string' || !httpPath.startsWith('/'))) {
      fail(`${where}.probe.httpPath must be a path starting with "/"`)
    }
    probe = Object.freeze({
      interval: checkTimeout(config.probe, 'interval', DEFAULT_PROBE_INTERVAL, 1, false, `${where}.probe.`),
      timeout: checkTimeout(config.probe, 'timeout', DEFAULT_PROBE_TIMEOUT, 1, false, `${where}.probe.`),
      httpPath
    })
  }
  return { balance, health: resolvedHealth, probe }
}
