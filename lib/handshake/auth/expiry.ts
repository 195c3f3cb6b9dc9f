import { CloseCode } from '../../relay/close-codes'
import type { Connection } from '../../relay/types'
import type { TokenClaims } from './token'

/** Node timers overflow past this many milliseconds (about 24.8 days) and fire at once. */
const MAX_TIMER_DELAY = 2 ** 31 - 1

/** Closes a connection with 1008 `token expired` when its token's `exp` passes. */
export function closeAtExpiry (connection: Connection, claims: TokenClaims): NodeJS.Timeout | undefined {
  const delay = claims.exp * 1000 - Date.now()
  if (delay > MAX_TIMER_DELAY) return undefined
  return setTimeout(() => connection.end(CloseCode.POLICY, 'token expired'), Math.max(0, delay)).unref()
}
