import type { PerMessageDeflateOptions } from 'ws'
import { fail, isPlainObject } from './check'
import type { BackendTlsOptions, ResolvedBackend } from './types'

/**
 * Validates one backend entry (from the `backends` map or returned by `resolveBackend`).
 * `where` names it in messages, e.g. `backends["Backend_ABC"]`.
 */
export function resolveBackendConfig (id: string, option: unknown, where: string, gatewayMaxPayload: number): ResolvedBackend {
  const config = typeof option === 'string' ? { url: option } : option
  if (!isPlainObject(config)) fail(`${where} must be a URL string or an object with a url`)
  let url: URL
  try {
    url = new URL(String(config.url))
  } catch {
    fail(`${where}.url must be a ws: or wss: URL`)
  }
  if (url.protocol !== 'ws:' && url.protocol !== 'wss:') fail(`${where}.url must be a ws: or wss: URL`)
  if (url.hash !== '') fail(`${where}.url must not have a #fragment`)
  const headers = config.headers ?? {}
  if (!isPlainObject(headers) || !Object.values(headers).every((v) => typeof v === 'string')) {
    fail(`${where}.headers must be an object of string values`)
  }
  const { url: _url, headers: _headers, perMessageDeflate = false, maxPayload = gatewayMaxPayload, ...tls } = config
  if (typeof perMessageDeflate !== 'boolean' && !isPlainObject(perMessageDeflate)) {
    fail(`${where}.perMessageDeflate must be a boolean or an object`)
  }
  if (typeof maxPayload !== 'number' || !Number.isInteger(maxPayload) || maxPayload < 1) {
    fail(`${where}.maxPayload must be an integer >= 1`)
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
