import { createVerifier } from 'fast-jwt'
import { checkInteger, fail, isPlainObject } from './check'
import { DEFAULT_JWKS } from './defaults'
import type { JwksJwtOptions } from './types'

/** The algorithms a JWKS key may be used with: asymmetric ones only (never HS*, never `none`). */
export const JWKS_ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA']

/** `jwt: { jwks, verify }` once checked: where the keys are, the cache settings and the verify options. */
export interface ResolvedJwks {
  /** The JWKS URL, when one is configured. */
  readonly url?: URL
  /** Otherwise the trusted issuers, each ending in `/` as get-jwks normalises them. */
  readonly issuers: ReadonlySet<string>
  readonly providerDiscovery: boolean
  readonly ttl: number
  readonly max: number
  readonly timeout: number
  readonly cooldown: number
  /** The caller's `verify` options less `algorithms`; the algorithms the caller allows, if any. */
  readonly verify: Record<string, unknown>
  readonly algorithms?: readonly string[]
}

/** `jwt` options that name a JWKS rather than a secret. */
export function isJwksOptions (jwt: object): jwt is JwksJwtOptions {
  return 'jwks' in jwt
}

/** A key source must be `https:`; `http:` only on a loopback host, where nobody can tamper with it in transit. */
function keySource (value: unknown, name: string): URL {
  let url: URL
  try {
    url = new URL(String(value))
  } catch {
    fail(`${name} must be an https: URL`)
  }
  const loopback = url.hostname === 'localhost' || url.hostname === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(url.hostname)
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && loopback)) fail(`${name} must be an https: URL (http: only on a loopback host)`)
  return url
}

/** Checks `jwt: { jwks, verify }` at registration; throws `FST_WS_GATEWAY_INVALID_OPTION` naming the option at fault. */
export function resolveJwks (jwt: JwksJwtOptions): ResolvedJwks {
  const extra = Object.keys(jwt).find((key) => key !== 'jwks' && key !== 'verify')
  if (extra !== undefined) fail(`jwt.${extra} is not used with jwt.jwks`)
  const { jwks, verify = {} } = jwt as { jwks: unknown, verify?: unknown }
  if (!isPlainObject(jwks)) fail('jwt.jwks must be an object')
  if (!isPlainObject(verify)) fail('jwt.verify must be an object')
  const unknown = Object.keys(jwks).find((key) => !['url', 'issuers', 'providerDiscovery', ...Object.keys(DEFAULT_JWKS)].includes(key))
  if (unknown !== undefined) fail(`unknown option "jwt.jwks.${unknown}"`)
  if ((jwks.url === undefined) === (jwks.issuers === undefined)) fail('jwt.jwks needs either url or issuers')
  let url: URL | undefined
  if (jwks.url !== undefined) {
    url = keySource(jwks.url, 'jwt.jwks.url')
    if (url.pathname === '/') fail('jwt.jwks.url must name the JWKS document, not a bare origin')
  }
  const issuers = jwks.issuers ?? []
  if (!Array.isArray(issuers) || (url === undefined && issuers.length === 0)) fail('jwt.jwks.issuers must be a non-empty array of issuer URLs')
  const providerDiscovery = jwks.providerDiscovery ?? false
  if (typeof providerDiscovery !== 'boolean') fail('jwt.jwks.providerDiscovery must be a boolean')
  if (providerDiscovery && url !== undefined) fail('jwt.jwks.providerDiscovery applies to issuers, not to url')

  const { algorithms, ...rest } = verify
  if (algorithms !== undefined && (!Array.isArray(algorithms) || algorithms.length === 0 || !algorithms.every((a) => JWKS_ALGORITHMS.includes(a)))) {
    fail(`jwt.verify.algorithms must list some of ${JWKS_ALGORITHMS.join(', ')} with jwt.jwks`)
  }
  try {
    // fast-jwt checks its own options when a verifier is made; made here (with a throw-away
    // secret, since the real keys come later), a bad one fails registration.
    createVerifier({ ...rest, key: 'options-check', algorithms: ['HS256'] })
  } catch (err) {
    fail(`jwt.verify: ${(err as Error).message}`)
  }
  return Object.freeze({
    url,
    issuers: new Set(issuers.map((issuer: unknown, i: number) => {
      keySource(issuer, `jwt.jwks.issuers[${i}]`)
      return String(issuer).endsWith('/') ? String(issuer) : `${String(issuer)}/`
    })),
    providerDiscovery,
    ttl: checkInteger(jwks, 'ttl', DEFAULT_JWKS.ttl, 1, 'jwt.jwks.'),
    max: checkInteger(jwks, 'max', DEFAULT_JWKS.max, 1, 'jwt.jwks.'),
    timeout: checkInteger(jwks, 'timeout', DEFAULT_JWKS.timeout, 1, 'jwt.jwks.'),
    cooldown: checkInteger(jwks, 'cooldown', DEFAULT_JWKS.cooldown, 0, 'jwt.jwks.'),
    verify: rest,
    algorithms: algorithms as string[] | undefined
  })
}
