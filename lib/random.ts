import { randomFillSync } from 'node:crypto'

/*
 * Random text for handshakes (the backend's `Sec-WebSocket-Key`, connection ids): one call to the
 * CSPRNG per handshake costs as much as the rest of the text's work, so its bytes are drawn 4 KiB
 * at a time, as ws draws its mask keys, and each byte is handed out once.
 */

const POOL_SIZE = 4 * 1024
const pool = Buffer.allocUnsafe(POOL_SIZE)
let poolAt = POOL_SIZE

/**
 * `size` fresh random bytes (at most 4 KiB) from the CSPRNG, as text in `encoding`.
 *
 * @example
 * ```ts
 * const key = randomText(16, 'base64') // a Sec-WebSocket-Key
 * ```
 */
export function randomText (size: number, encoding: 'base64' | 'base64url'): string {
  if (poolAt + size > POOL_SIZE) {
    randomFillSync(pool)
    poolAt = 0
  }
  const text = pool.toString(encoding, poolAt, poolAt + size)
  poolAt += size
  return text
}
