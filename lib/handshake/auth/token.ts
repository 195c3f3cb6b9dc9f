import type { FastifyRequest } from 'fastify'
import { ConflictingTokensError, InvalidTokenError, NoTokenError, TokenExpiredError } from '../../errors'
import type { ResolvedOptions, TokenClaims } from '../../options/types'
import { queryValue } from '../query'

export type { TokenClaims }

/** Verifies a raw token and returns its claims, or throws. Sync or async, as @fastify/jwt is. */
export type VerifyToken = (token: string) => unknown

/**
 * A token verifier and the clock tolerance (ms) it allows past `exp`: the expiry timer closes a
 * connection at the same instant, so a token the handshake accepts is never closed at once.
 */
export interface TokenVerifier {
  readonly verify: VerifyToken
  readonly clockTolerance: number
}

const BEARER = /^Bearer +([^\s]+) *$/i

/** fast-jwt error codes → what the client is told (a category, never the library's text). */
const TOKEN_FAILURES: Record<string, string> = {
  FAST_JWT_MALFORMED: 'malformed',
  FAST_JWT_INVALID_TYPE: 'malformed',
  FAST_JWT_INVALID_PAYLOAD: 'malformed',
  FAST_JWT_INVALID_SIGNATURE: 'bad signature',
  FAST_JWT_INVALID_ALGORITHM: 'algorithm not allowed',
  FAST_JWT_MISSING_SIGNATURE: 'algorithm not allowed',
  FAST_JWT_INACTIVE: 'not yet valid',
  FAST_JWT_INVALID_CLAIM_VALUE: 'claims rejected',
  FAST_JWT_INVALID_CLAIM_TYPE: 'claims rejected',
  FAST_JWT_MISSING_REQUIRED_CLAIM: 'claims rejected'
}

/** The token of an `Authorization: Bearer <token>` header, or undefined. */
function bearerToken (request: FastifyRequest): string | undefined {
  const header = request.headers.authorization
  return header === undefined ? undefined : BEARER.exec(header)?.[1]
}

/**
 * The client's token, from wherever it may be: the Authorization header, the subprotocol list
 * (browsers cannot set headers), and the query parameter and cookie when configured. Two
 * different tokens in one request are refused rather than guessed between.
 */
export function tokenOf (request: FastifyRequest, opts: ResolvedOptions, protocolToken: string | undefined): string | undefined {
  const cookies = (request as FastifyRequest & { cookies?: Record<string, string | undefined> }).cookies
  const candidates = [
    bearerToken(request),
    protocolToken,
    queryValue(request, opts.tokenQuery),
    opts.tokenCookie === undefined ? undefined : cookies?.[opts.tokenCookie]
  ].flat()
  let token: string | undefined
  for (const candidate of candidates) {
    if (candidate === undefined || candidate === token) continue
    if (token !== undefined) throw new ConflictingTokensError()
    token = candidate
  }
  return token
}

/** What the client is told about a verifier's failure: the gateway's own errors as they are, else a category. */
function tokenFailure (err: unknown): Error {
  const code = String((err as { code?: unknown }).code)
  if (code.startsWith('FST_WS_GATEWAY_')) return err as Error
  if (code === 'FAST_JWT_EXPIRED') return new TokenExpiredError()
  return new InvalidTokenError(TOKEN_FAILURES[code] ?? 'verification failed')
}

/** Claims that may be a user: an object with a numeric `exp`; stored in `request.user`. */
function accepted (request: FastifyRequest, claims: TokenClaims): TokenClaims {
  if (typeof claims !== 'object' || claims === null || typeof claims.exp !== 'number') {
    throw new InvalidTokenError('exp claim required')
  }
  request.user = claims
  return claims
}

/**
 * Verifies the client's token (see `tokenOf`) and stores its claims in `request.user`. Throws 401 errors whose
 * message names the category of failure; `exp` is required whatever the JWT settings say, so a
 * stolen token cannot live forever. Synchronous when `verify` is (a promise only for one that is:
 * a handshake need not wait a tick for a verifier that does not).
 */
export function authenticate (request: FastifyRequest, verify: VerifyToken, token: string | undefined): TokenClaims | Promise<TokenClaims> {
  if (token === undefined) throw new NoTokenError()
  let verified
  try {
    verified = verify(token)
  } catch (err) {
    throw tokenFailure(err)
  }
  if (typeof (verified as PromiseLike<unknown> | undefined)?.then !== 'function') return accepted(request, verified as TokenClaims)
  return Promise.resolve(verified as PromiseLike<TokenClaims>).then((claims: TokenClaims) => accepted(request, claims), (err: unknown) => { throw tokenFailure(err) })
}
