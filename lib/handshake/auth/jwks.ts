import { createPublicKey, type JsonWebKey } from 'node:crypto'
import { createDecoder, createVerifier } from 'fast-jwt'
import buildGetJwks, { type JWK } from 'get-jwks'
import { InvalidTokenError, KeysUnavailableError } from '../../errors'
import { JWKS_ALGORITHMS, resolveJwks, type ResolvedJwks } from '../../options/jwks'
import type { JwksJwtOptions } from '../../options/types'
import { keyAlgorithms } from './algorithms'
import type { TokenVerifier } from './token'

/* get-jwks (verified against 11.0.3) answers these codes when the JWKS was fetched but has no such key. */
const NOT_IN_THE_SET = new Set(['JWK_NOT_FOUND', 'NO_JWKS'])

/**
 * The algorithms a JWK may verify: its key type's family (see `keyAlgorithms`); when the JWK
 * declares its `alg`, that one alone (an RSA key may declare a PS* one). Within the caller's
 * `verify.algorithms` when given. Empty for a key that is not a public key (`kty: 'oct'`).
 */
function algorithmsOf (jwk: JWK, allowed: readonly string[] = JWKS_ALGORITHMS): string[] {
  let family: string[]
  try {
    const key = createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' })
    family = keyAlgorithms(key) ?? []
    if (typeof jwk.alg === 'string') {
      family = [...family, ...(key.asymmetricKeyType === 'rsa' ? ['PS256', 'PS384', 'PS512'] : [])].filter((alg) => alg === jwk.alg)
    }
  } catch {
    family = []
  }
  return family.filter((alg) => allowed.includes(alg))
}

/** Resolves with the promise's value, or rejects once `ms` have passed. */
async function within<T> (promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms)
  })
  return await Promise.race([promise, timeout]).finally(() => clearTimeout(timer))
}

/**
 * A verifier for `jwt: { jwks, verify }`: the key comes from the JWKS by the token's `kid` (cached
 * by get-jwks for `ttl`; a `kid` not in the cache makes it fetch the set again, which is how a
 * rotated-in key is found), and each key verifies only its own family of algorithms.
 *
 * Failures: a `kid` not in the set → 401 `unknown key`; after such a miss, other never-seen `kid`s
 * of that issuer are refused without a fetch for `cooldown` ms; an `iss` not among `issuers` →
 * 401 `claims rejected`; a JWKS that cannot be fetched (down, slower than `timeout`, not a JWKS)
 * while no copy of the key is cached → 503 `KEYS_UNAVAILABLE`, with the cause attached.
 */
export function jwksVerifier (jwt: JwksJwtOptions, clockToleranceSeconds: number): TokenVerifier {
  const settings: ResolvedJwks = resolveJwks(jwt)
  const { url, issuers, timeout, cooldown } = settings
  const jwks = buildGetJwks({
    ttl: settings.ttl,
    max: settings.max,
    providerDiscovery: settings.providerDiscovery,
    jwksPath: url === undefined ? undefined : `${url.pathname}${url.search}`
  })
  const decode = createDecoder({ complete: true })
  const verifyOptions = { clockTolerance: clockToleranceSeconds * 1000, ...settings.verify }
  const verifiers = new WeakMap<JWK, (token: string) => unknown>()
  const cooldowns = new Map<string, number>()

  function verifierFor (jwk: JWK): (token: string) => unknown {
    let verifier = verifiers.get(jwk)
    if (verifier === undefined) {
      const algorithms = algorithmsOf(jwk, settings.algorithms)
      verifier = algorithms.length === 0
        ? () => { throw new InvalidTokenError('algorithm not allowed') }
        : createVerifier({
          ...verifyOptions,
          key: createPublicKey({ key: jwk as JsonWebKey, format: 'jwk' }).export({ type: 'spki', format: 'pem' }).toString(),
          algorithms: algorithms as never,
          complete: false
        })
      verifiers.set(jwk, verifier)
    }
    return verifier
  }

  async function keyFor (domain: string, alg: string, kid: string): Promise<JWK> {
    const cacheKey = jwks.generateCacheKey(alg, kid, domain)
    // get-jwks keeps an expired or evicted key in its stale cache and falls back on it whenever a
    // fetch fails — also when the fetched set no longer has the key, so a removed key would live on
    // (each fallback stores it again). The gateway takes that copy out and decides itself: only a
    // JWKS that cannot be fetched falls back on it. get() moves an expired entry to the stale cache.
    const cached = jwks.cache.get(cacheKey)
    const stale = jwks.staleCache.get(cacheKey) as Promise<JWK> | undefined
    jwks.staleCache.delete(cacheKey)
    const seen = cached !== undefined || stale !== undefined
    if (!seen && (cooldowns.get(domain) ?? 0) > Date.now()) throw new InvalidTokenError('unknown key')
    try {
      return await within(jwks.getJwk({ domain, alg, kid }), timeout)
    } catch (err) {
      // A failed fetch leaves its failure in the stale cache (get-jwks deletes the entry, which
      // moves it there): clear it, so only copies of keys that were once fetched stay.
      jwks.staleCache.delete(cacheKey)
      if (NOT_IN_THE_SET.has(String((err as { code?: unknown }).code))) {
        if (!seen) cooldowns.set(domain, Date.now() + cooldown)
        throw new InvalidTokenError('unknown key')
      }
      const copy = await stale?.catch(() => undefined)
      if (copy === undefined) throw new KeysUnavailableError({ cause: err })
      jwks.staleCache.set(cacheKey, stale as unknown as JWK)
      return copy
    }
  }

  async function verify (token: string): Promise<unknown> {
    const { header, payload } = decode(token) as { header: Record<string, unknown>, payload: Record<string, unknown> }
    const alg = String(header.alg)
    if (!JWKS_ALGORITHMS.includes(alg)) throw new InvalidTokenError('algorithm not allowed')
    let domain = url === undefined ? undefined : `${url.origin}/`
    if (domain === undefined) {
      const iss = String(payload.iss)
      domain = iss.endsWith('/') ? iss : `${iss}/`
      if (!issuers.has(domain)) throw new InvalidTokenError('claims rejected')
    }
    const jwk = await keyFor(domain, alg, header.kid as string)
    return verifierFor(jwk)(token)
  }

  return { verify, clockTolerance: verifyOptions.clockTolerance as number }
}
