import { createPublicKey } from 'node:crypto'
import { createVerifier } from 'fast-jwt'
import { keyAlgorithms } from '../handshake/auth/algorithms'
import { checkKeys, fail, isPlainObject } from './check'
import { isJwksOptions } from './jwks'
import type { JwksJwtOptions, ResolvedOptions } from './types'

/** The algorithms a key may verify: `pinned` unless `jwt.verify.algorithms` asks for others of `allowed`. */
interface KeyFamily {
  readonly name: string
  readonly pinned: readonly string[]
  readonly allowed: readonly string[]
}

const SECRET_FAMILY: KeyFamily = { name: 'a shared secret', pinned: ['HS256'], allowed: ['HS256', 'HS384', 'HS512'] }

/** fast-jwt's verify options the gateway passes on (`maxAge` in seconds, as @fastify/jwt takes it). */
const VERIFY_KEYS = new Set([
  'algorithms', 'allowedAud', 'allowedIss', 'allowedSub', 'allowedJti', 'allowedNonce', 'requiredClaims',
  'maxAge', 'ignoreNotBefore', 'checkTyp', 'allowedCritHeaders', 'cache', 'cacheTTL', 'errorCacheTTL', 'clockTimestamp'
])
/** fast-jwt verify options that would undo what the gateway relies on, and what to do instead. */
const REFUSED_VERIFY_KEYS: Record<string, string> = {
  key: 'the key is jwt.secret',
  clockTolerance: 'use the clockTolerance option (seconds)',
  ignoreExpiration: 'the gateway always checks exp',
  complete: 'the gateway reads the claims themselves'
}

/** The key fast-jwt verifies with, and the algorithms its type allows (see `keyAlgorithms`). */
function keyOf (secret: unknown): { key: string | Buffer, family: KeyFamily } {
  if (typeof secret === 'string' || Buffer.isBuffer(secret)) {
    if (secret.length === 0) fail('jwt.secret must not be empty')
    return { key: secret, family: SECRET_FAMILY }
  }
  if (!isPlainObject(secret) || !('public' in secret)) fail('jwt.secret must be a string, a Buffer or a { public, private? } key pair')
  checkKeys(secret, new Set(['public', 'private']), 'jwt.secret.')
  const key = secret.public
  let publicKey
  try {
    if (typeof key !== 'string' && !Buffer.isBuffer(key)) throw new TypeError('not PEM')
    publicKey = createPublicKey(key)
  } catch {
    fail('jwt.secret.public is not a valid public key (PEM, as a string or a Buffer)')
  }
  const pinned = keyAlgorithms(publicKey)
  if (pinned === undefined) fail(`jwt.secret.public: unsupported key type ${publicKey.asymmetricKeyType}`)
  // An RSA key verifies PS* signatures too, when asked for.
  const allowed = publicKey.asymmetricKeyType === 'rsa' ? [...pinned, 'PS256', 'PS384', 'PS512'] : pinned
  return { key, family: { name: `an ${publicKey.asymmetricKeyType} public key`, pinned, allowed } }
}

/** The algorithms to accept: the key family's pinned ones, or those asked for, if the key can verify them. */
function algorithmsFor (asked: unknown, family: KeyFamily): string[] {
  if (asked === undefined) return [...family.pinned]
  if (!Array.isArray(asked) || asked.length === 0 || !asked.every((a) => typeof a === 'string')) {
    fail('jwt.verify.algorithms must be a non-empty array of algorithm names')
  }
  if (asked.includes('none')) fail('jwt.verify.algorithms must not include "none": unsigned tokens are never accepted')
  const other = asked.find((a) => !family.allowed.includes(a))
  if (other !== undefined) fail(`jwt.verify.algorithms: "${other}" cannot be verified with ${family.name} (it allows ${family.allowed.join(', ')})`)
  return asked
}

/**
 * The `jwt` option: `{ jwks, verify? }` is passed on (its settings are checked when its verifier is
 * made, see `jwksVerifier`); `{ secret, verify? }` becomes the gateway's own token verifier, built
 * with fast-jwt — @fastify/jwt's own engine, used directly so nothing is added to the app's
 * `fastify.jwt` — with secure defaults @fastify/jwt does not give: algorithms pinned to the key's
 * family (HS256 for a shared secret), never `none`, and `clockToleranceSeconds` of skew. Anything
 * fast-jwt refuses is an `FST_WS_GATEWAY_INVALID_OPTION` naming `jwt.verify`.
 */
export function resolveJwt (input: unknown, clockToleranceSeconds: number): Pick<ResolvedOptions, 'jwks' | 'verifyToken'> {
  if (input === undefined) return {}
  if (!isPlainObject(input)) fail('jwt must be an object: { secret, verify? } or { jwks, verify? }')
  if (isJwksOptions(input)) return { jwks: input as unknown as JwksJwtOptions }
  checkKeys(input, new Set(['secret', 'verify']), 'jwt.')
  const { key, family } = keyOf(input.secret)
  const verify = input.verify ?? {}
  if (!isPlainObject(verify)) fail('jwt.verify must be an object of verify options')
  const refused = Object.keys(verify).find((name) => Object.hasOwn(REFUSED_VERIFY_KEYS, name))
  if (refused !== undefined) fail(`jwt.verify.${refused} is not supported: ${REFUSED_VERIFY_KEYS[refused]}`)
  checkKeys(verify, VERIFY_KEYS, 'jwt.verify.')
  const { maxAge } = verify
  if (maxAge !== undefined && (typeof maxAge !== 'number' || !Number.isFinite(maxAge) || maxAge <= 0)) {
    fail('jwt.verify.maxAge must be a number of seconds > 0')
  }
  const options = {
    ...verify,
    algorithms: algorithmsFor(verify.algorithms, family),
    key,
    clockTolerance: clockToleranceSeconds * 1000,
    maxAge: maxAge === undefined ? undefined : maxAge * 1000
  }
  try {
    return { verifyToken: createVerifier(options as unknown as Parameters<typeof createVerifier>[0]) }
  } catch (err) {
    fail(`jwt.verify: ${(err as Error).message}`)
  }
}
