import { createPublicKey } from 'node:crypto'
import type { FastifyInstance } from 'fastify'
import fastifyJwt, { type FastifyJWTOptions, type JWT } from '@fastify/jwt'
import { InvalidOptionError } from '../../errors'
import type { ResolvedOptions } from '../../options/types'
import { isJwksOptions } from '../../options/jwks'
import { keyAlgorithms } from './algorithms'
import { jwksVerifier } from './jwks'
import type { TokenVerifier } from './token'

function algorithmsFor (secret: unknown): string[] {
  if (typeof secret === 'string' || Buffer.isBuffer(secret)) {
    if (secret.length === 0) throw new InvalidOptionError('jwt.secret must not be empty')
    return ['HS256']
  }
  if (typeof secret !== 'object' || secret === null || !('public' in secret)) {
    throw new InvalidOptionError('jwt.secret must be a string, a Buffer or a { public, private? } key pair')
  }
  let key
  try {
    key = createPublicKey(secret.public as Parameters<typeof createPublicKey>[0])
  } catch {
    throw new InvalidOptionError('jwt.secret.public is not a valid public key')
  }
  const algorithms = keyAlgorithms(key)
  if (algorithms === undefined) throw new InvalidOptionError(`jwt.secret.public: unsupported key type ${key.asymmetricKeyType}`)
  return algorithms
}

/**
 * The @fastify/jwt options the gateway registers with: the caller's, plus secure defaults that
 * @fastify/jwt does not give on its own — algorithms pinned to the key's family (HS256 for a
 * shared secret) and a small clock tolerance. Anything the caller set in `verify` wins.
 */
export function jwtPluginOptions (jwt: FastifyJWTOptions, clockToleranceSeconds: number, namespace: string): FastifyJWTOptions {
  const algorithms = algorithmsFor(jwt.secret)
  return {
    ...jwt,
    namespace,
    verify: { algorithms, clockTolerance: clockToleranceSeconds * 1000, ...jwt.verify }
  } as FastifyJWTOptions
}

/**
 * The token verifier: keys from a JWKS with `jwt.jwks`; a namespaced @fastify/jwt registration of
 * the gateway's own for any other `jwt` (so it never clashes with the app's); otherwise the app's
 * own @fastify/jwt.
 */
export async function tokenVerifier (fastify: FastifyInstance, opts: ResolvedOptions, namespace: string): Promise<TokenVerifier> {
  let jwt: JWT | undefined
  if (opts.jwt !== undefined && isJwksOptions(opts.jwt)) {
    return jwksVerifier(opts.jwt, opts.clockTolerance)
  } else if (opts.jwt !== undefined) {
    await fastify.register(fastifyJwt, jwtPluginOptions(opts.jwt, opts.clockTolerance, namespace))
    jwt = (fastify.jwt as unknown as Record<string, JWT>)[namespace]
  } else if (fastify.hasDecorator('jwt') && typeof fastify.jwt.verify === 'function') {
    jwt = fastify.jwt
  } else {
    throw new InvalidOptionError('jwt is required unless the app registered @fastify/jwt itself')
  }
  const { verify } = (jwt as JWT).options
  return { verify: (token) => (jwt as JWT).verify(token), clockTolerance: Number(verify?.clockTolerance ?? 0) }
}
