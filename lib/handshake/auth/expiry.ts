import { MAX_TIMER_DELAY } from '../../options/defaults'
import { CloseCode } from '../../relay/close-codes'
import type { Connection } from '../../relay/types'
import type { TokenClaims } from './token'

/**
 * Calls `fn` at `deadline` (ms since the epoch), however far away: a wait longer than `maxDelay`
 * (the most a Node timer can wait) is chained in steps. The timers do not keep the process alive.
 * Returns the function that cancels the call.
 */
export function callAt (deadline: number, fn: () => void, maxDelay = MAX_TIMER_DELAY): () => void {
  let timer: NodeJS.Timeout
  const wait = (): void => {
    const delay = deadline - Date.now()
    timer = (delay > maxDelay ? setTimeout(wait, maxDelay) : setTimeout(fn, Math.max(0, delay))).unref()
  }
  wait()
  return () => clearTimeout(timer)
}

/**
 * Closes a connection with 1008 `token expired` at the instant the handshake starts refusing its
 * token: `exp` plus the verifier's clock tolerance (ms). One rule for both, so a token the
 * handshake accepted within the tolerance is not closed the moment it connects.
 */
export function closeAtExpiry (connection: Connection, claims: TokenClaims, clockTolerance: number): () => void {
  return callAt(claims.exp * 1000 + clockTolerance, () => connection.end(CloseCode.POLICY, 'token expired'))
}
