import type { PerMessageDeflateOptions } from 'ws'
import { checkKeys, fail, headersProblem, isPlainObject } from './check'
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
const KNOWN_KEYS = new Set(['url', 'headers', 'perMessageDeflate', 'maxPayload', ...Object.keys(TLS_CHECKS)])

/** PEM text or DER bytes, one or several; Node's `{ pem, passphrase }` objects inside a list too. */
function isKeyMaterial (value: unknown): boolean {
  const one = (v: unknown): boolean => typeof v === 'string' || Buffer.isBuffer(v)
  return one(value) || (Array.isArray(value) && value.every((v) => one(v) || isPlainObject(v)))
}

/**
 * Validates one backend entry (from the `backends` map or returned by `resolveBackend`).
 * `where` names it in messages, e.g. `backends["Backend_ABC"]`. Nothing unknown passes: every
 * key would otherwise reach ws's client options unchecked (a `header` typo is never sent).
 */
export function resolveBackendConfig (id: string, option: unknown, where: string, gatewayMaxPayload: number): ResolvedBackend {
  const config = typeof option === 'string' ? { url: option } : option
  if (!isPlainObject(config)) fail(`${where} must be a URL string or an object with a url`)
  checkKeys(config, KNOWN_KEYS, `${where}.`)
  let url: URL
  try {
    url = new URL(String(config.url))
  } catch {
    fail(`${where}.url must be a ws: or wss: URL`)
  }
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') fail(`${where}.url must be a ws: or wss: URL`)
  if (url.hash !== '') fail(`${where}.url must not have a #fragment`)
  const { url: _url, headers = {}, perMessageDeflate = false, maxPayload = gatewayMaxPayload, ...tls } = config
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
    url,
    headers: Object.freeze({ ...headers as Record<string, string> }),
    perMessageDeflate: perMessageDeflate as boolean | PerMessageDeflateOptions,
    maxPayload,
    tls: Object.freeze(tls as BackendTlsOptions)
  })
}
