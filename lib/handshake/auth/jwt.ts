import type { FastifyInstance } from 'fastify'
import type { JWT } from '@fastify/jwt'
import { InvalidOptionError } from '../../errors'
import type { ResolvedOptions } from '../../options/types'
import { jwksVerifier } from './jwks'
import type { TokenVerifier } from './token'

/**
 * The token verifier: keys from a JWKS with `jwt.jwks`; the gateway's own fast-jwt verifier for
 * `jwt.secret` (see `resolveJwt`), which lives only in the gateway's route and never touches the
 * app's `fastify.jwt`; otherwise the app's own @fastify/jwt, with the app's verify settings.
 */
export function tokenVerifier (fastify: FastifyInstance, opts: ResolvedOptions): TokenVerifier {
  if (opts.jwks !== undefined) return jwksVerifier(opts.jwks, opts.clockTolerance)
  if (opts.verifyToken !== undefined) return { verify: opts.verifyToken, clockTolerance: opts.clockTolerance * 1000 }
  if (!fastify.hasDecorator('jwt') || typeof fastify.jwt.verify !== 'function') {
    throw new InvalidOptionError('jwt is required unless the app registered @fastify/jwt itself')
  }
  const jwt: JWT = fastify.jwt
  return { verify: (token) => jwt.verify(token), clockTolerance: Number(jwt.options.verify?.clockTolerance ?? 0) }
}
