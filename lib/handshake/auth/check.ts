import type { FastifyReply, FastifyRequest } from 'fastify'
import { KeysUnavailableError } from '../../errors'
import type { ResolvedOptions } from '../../options/types'
import type { ProtocolOffer } from '../checks'
import { retryLater, type ConnectionLimits, type Slot } from '../limits'
import { authenticate, tokenOf, type TokenClaims, type TokenVerifier } from './token'

/** What the token check reads of a handshake (its offer and slot) and writes (the token). */
export interface TokenHandshake {
  readonly offer: ProtocolOffer
  readonly slot: Slot
  token?: string
}

/** Checks a handshake's token; returns a promise only when the verifier is asynchronous. */
export type TokenCheck = (request: FastifyRequest, reply: FastifyReply, handshake: TokenHandshake) => Promise<void> | undefined

/**
 * The route's token check: the client's token (see `tokenOf`) verified — a 401 with a Bearer
 * challenge when it fails, 503 with `Retry-After` and no challenge when the signing keys could not
 * be fetched (not the client's fault; the cause is logged) — then its subject admitted by the
 * limits. Synchronous with a synchronous verifier: a handshake waits no tick for nothing.
 */
export function tokenCheck (opts: ResolvedOptions, verifier: TokenVerifier, limits: ConnectionLimits): TokenCheck {
  function refused (request: FastifyRequest, reply: FastifyReply, err: unknown): never {
    if (!(err instanceof KeysUnavailableError)) throw err
    reply.removeHeader('www-authenticate')
    request.log.warn({ err: err.cause }, 'ws gateway could not fetch the token signing keys')
    retryLater(reply, opts.retryAfter, err)
  }
  return (request, reply, handshake) => {
    reply.header('www-authenticate', 'Bearer')
    handshake.token = tokenOf(request, opts, handshake.offer.token)
    let verified
    try {
      verified = authenticate(request, verifier.verify, handshake.token)
    } catch (err) {
      refused(request, reply, err)
    }
    const admit = (claims: TokenClaims): void => {
      reply.removeHeader('www-authenticate')
      if (typeof claims.sub === 'string') limits.admitSubject(handshake.slot, claims.sub, reply)
    }
    if (!(verified instanceof Promise)) {
      admit(verified)
      return undefined
    }
    return verified.then(admit, (err: unknown) => refused(request, reply, err))
  }
}
