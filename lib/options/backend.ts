import type { PerMessageDeflateOptions } from 'ws'
import { checkKeys, fail, headersProblem, isPlainObject } from './check'
import { BACKEND_ID_PATTERN } from './defaults'
import { endpointSource, poolSettings } from './pool'
import type { BackendTlsOptions, ResolvedBackend } from './types'

/** The TLS settings a backend config may carry, each with the check its value must pass. */
const TLS_CHECKS: Record<keyof BackendTlsOptions, [(value: unknown) => boolean, string]> = {
  ca: [isKeyMaterial, 'a string, a Buffer or an array of them'],
  cert: [isKeyMaterial, 'a string, a Buffer or an array of them'],
  key: [isKeyMaterial, 'a string, a Buffer or an array of them'],
  pfx: [isKeyMaterial, 'a string, a Buffer or an array of them'],
  passphrase: [(value) => typeof value === 'string', 'a string'],
  rejectUnauthorized: [(value) => typeof value === 'boolean', 'a boolean'],
  servername: [(value) => typeof value === 'string', 'a string'],
  checkServerIdentity: [(value) => typeof value === 'function', 'a function']
}
const KNOWN_KEYS = new Set([
  'url', 'urls', 'dns', 'balance', 'health', 'probe', 'headers', 'perMessageDeflate', 'maxPayload', ...Object.keys(TLS_CHECKS)
])

/** PEM text or DER bytes, one or several; Node's `{ pem, passphrase }` objects inside a list too. */
function isKeyMaterial (value: unknown): boolean {
  const one = (v: unknown): boolean => typeof v === 'string' || Buffer.isBuffer(v)
  return one(value) || (Array.isArray(value) && value.every((v) => one(v) || isPlainObject(v)))
}

/**
 * Validates one backend entry (from the `backends` map, `setBackend`, `resolveBackend` or an
 * announcement).
 * `where` names it in messages, e.g. `backends["Backend_ABC"]`. Nothing unknown passes: every
 * key would otherwise reach ws's client options unchecked (a `header` typo is never sent).
 */
export function resolveBackendConfig (id: string, option: unknown, where: string, gatewayMaxPayload: number): ResolvedBackend {
  const config = typeof option === 'string' ? { url: option } : option
  if (!isPlainObject(config)) fail(`${where} must be a URL string or an object with a url, urls or dns`)
  checkKeys(config, KNOWN_KEYS, `${where}.`)
  const source = endpointSource(config, where)
  const {
    url: _url, urls: _urls, dns: _dns, balance: _balance, health: _health, probe: _probe,
    headers = {}, perMessageDeflate = false, maxPayload = gatewayMaxPayload, ...tls
  } = config
  const problem = headersProblem(headers)
  if (problem !== undefined) fail(`${where}.headers${problem}`)
  if (typeof perMessageDeflate !== 'boolean' && !isPlainObject(perMessageDeflate)) {
    fail(`${where}.perMessageDeflate must be a boolean or an object`)
  }
  if (typeof maxPayload !== 'number' || !Number.isInteger(maxPayload) || maxPayload < 1) {
    fail(`${where}.maxPayload must be an integer >= 1`)
  }
  for (const [name, value] of Object.entries(tls)) {
    const [valid, expected] = TLS_CHECKS[name as keyof BackendTlsOptions]
    if (value !== undefined && !valid(value)) fail(`${where}.${name} must be ${expected}`)
  }
  return Object.freeze({
    id,
    source: Object.freeze(source),
    ...poolSettings(config, where),
    headers: Object.freeze({ ...headers as Record<string, string> }),
    perMessageDeflate: perMessageDeflate as boolean | PerMessageDeflateOptions,
    maxPayload,
    tls: Object.freeze(tls as BackendTlsOptions)
  })
}

/** A backend entry with its ID checked too (the `backends` map, `setBackend`, announcements). */
export function resolveBackendEntry (id: string, option: unknown, where: string, gatewayMaxPayload: number): ResolvedBackend {
  if (typeof id !== 'string' || !BACKEND_ID_PATTERN.test(id)) fail(`${where}: IDs must match ${BACKEND_ID_PATTERN}`)
  return resolveBackendConfig(id, option, where, gatewayMaxPayload)
}
