import { randomFillSync } from 'node:crypto'

/*
 * RFC 6455 §5.3: a client — here the gateway, towards the backend — masks every frame with a
 * fresh key that nobody can predict. Forwarding the client's own keys would let a client choose
 * them (a zero key puts its payload on the backend's wire byte for byte as it wrote it), so every
 * client frame the gateway forwards gets a new key from the CSPRNG, and its payload is masked
 * again in one pass without being unmasked: XOR with (old key ^ new key) turns data ^ old into
 * data ^ new. Keys are 32-bit numbers here, their first byte the most significant.
 */

/** Random bytes are drawn 8 KiB at a time and used 4 per key, as ws does: one draw per 2,048 keys. */
const POOL_SIZE = 8 * 1024
const pool = Buffer.allocUnsafe(POOL_SIZE)
let poolAt = POOL_SIZE

/** A fresh random 32-bit key. */
function nextKey (): number {
  if (poolAt === POOL_SIZE) {
    randomFillSync(pool)
    poolAt = 0
  }
  const key = pool.readUInt32BE(poolAt)
  poolAt += 4
  return key
}

/**
 * Writes a fresh random mask key at `buf[at, at + 4)`.
 *
 * @example
 * ```ts
 * randomMask(frame, 2) // a masked control frame's key
 * ```
 */
export function randomMask (buf: Buffer, at: number): void {
  buf.writeUInt32BE(nextKey(), at)
}

/**
 * Replaces the mask key at `head[at, at + 4)` with a fresh one and returns old ^ new, the key that
 * masks the frame's payload again (`remask`).
 *
 * @example
 * ```ts
 * const delta = newMask(header, header.length - 4)
 * ```
 */
export function newMask (head: Buffer, at: number): number {
  const old = head.readUInt32BE(at)
  const key = nextKey()
  head.writeUInt32BE(key, at)
  return (old ^ key) >>> 0
}

/** XORs `buf[from, to)` with `key`, its first byte on `buf[from]`. */
type Xor = (buf: Buffer, from: number, to: number, key: number) => void

/** XOR byte by byte: the cheapest for short payloads. */
const xorBytes: Xor = (buf, from, to, key) => {
  const k0 = key >>> 24
  const k1 = (key >>> 16) & 0xff
  const k2 = (key >>> 8) & 0xff
  const k3 = key & 0xff
  let i = from
  for (; i + 4 <= to; i += 4) {
    buf[i] ^= k0
    buf[i + 1] ^= k1
    buf[i + 2] ^= k2
    buf[i + 3] ^= k3
  }
  if (i < to) buf[i++] ^= k0
  if (i < to) buf[i++] ^= k1
  if (i < to) buf[i] ^= k2
}

/** `key` turned so that its byte `bytes` (0–3) comes first. */
function rotate (key: number, bytes: number): number {
  const shift = (bytes & 3) * 8
  return shift === 0 ? key : ((key << shift) | (key >>> (32 - shift))) >>> 0
}

/** Room for a key in the machine's own byte order: written big-endian as bytes, read as a word. */
const keyWord = new Uint32Array(1)
const keyBytes = Buffer.from(keyWord.buffer)

/**
 * XOR a 32-bit word at a time, about five times faster than byte by byte on large payloads: what
 * is used when bufferutil is not installed.
 *
 * @example
 * ```ts
 * xorWords(chunk, 14, chunk.length, delta)
 * ```
 */
export const xorWords: Xor = (buf, from, to, key) => {
  // Bytes up to a 4-byte boundary of the memory, then whole words, then the last bytes.
  const head = Math.min((4 - ((buf.byteOffset + from) & 3)) & 3, to - from)
  xorBytes(buf, from, from + head, key)
  const turned = rotate(key, head)
  const start = from + head
  const words = (to - start) >>> 2
  keyBytes.writeUInt32BE(turned)
  const word = keyWord[0]
  const view = new Uint32Array(buf.buffer, buf.byteOffset + start, words)
  for (let i = 0; i < words; i++) view[i] ^= word
  xorBytes(buf, start + words * 4, to, turned)
}

/**
 * bufferutil's native XOR (ws uses it too; an optional dependency of this package), about thirty
 * times faster than byte by byte on large payloads; `xorWords` where it is not installed.
 */
function loadXor (): Xor {
  try {
    const { unmask } = require('bufferutil') as { unmask: (buf: Buffer, key: Buffer) => void }
    const native = Buffer.allocUnsafe(4)
    return (buf, from, to, key) => {
      native.writeUInt32BE(key)
      unmask(buf.subarray(from, to), native)
    }
  /* c8 ignore start -- only where the optional bufferutil failed to install (the fallback itself
     is tested on its own, and bench/remask.ts times both) */
  } catch {
    return xorWords
  }
  /* c8 ignore stop */
}

const xorLarge = loadXor()
/** Below this many bytes the byte loop is cheaper than either (see bench/remask.ts). */
const LARGE = 128

/**
 * XORs `buf[from, to)` — payload bytes from position `offset` of their frame's payload on — with
 * the key `delta` (from `newMask`).
 *
 * @example
 * ```ts
 * remask(chunk, pos, pos + n, leg.maskDelta, leg.maskOffset)
 * ```
 */
export function remask (buf: Buffer, from: number, to: number, delta: number, offset: number): void {
  // The key byte for payload position p is delta's byte p % 4: turned so that `from` gets its own.
  const key = rotate(delta, offset)
  if (to - from < LARGE) xorBytes(buf, from, to, key)
  else xorLarge(buf, from, to, key)
}
