import { Socket } from 'node:net'

/*
 * Reading a socket Node made (a server's: the client leg) into one buffer the leg reuses, as
 * `net.connect({ onread })` does for a socket we open. Why: every read otherwise lands in a fresh
 * ArrayBuffer, and V8 counts the external memory allocated since its last mark-compact against the
 * old generation's limit. At 64 KiB a relay allocates ~32 MB of them between two scavenges, so once
 * a mark-compact has run under load (after a burst of connections, say) and left the limit only
 * ~24 MB above the live heap, every scavenge starts the next mark-compact: 10–30 per second, and
 * twice the CPU per message. A leg reading into its own buffer allocates nothing per read.
 *
 * Node offers `onread` only when it constructs the socket. The switch sets what `onread` sets up —
 * three symbol-keyed slots, learnt from a socket of our own, and the handle's `useUserBuffer` — and
 * `canBorrow` says when that is not there (another Node) or not safe (TLS, bytes still buffered).
 */

/** How many bytes one read takes at most: Node's own read size. */
export const READ_SIZE = 64 * 1024

/** A read at least this big says the leg carries bulk data: worth a buffer of its own from then on. */
export const BULK_READ = 16 * 1024

interface Slots { buffer: symbol, callback: symbol, generator: symbol }

/**
 * The slots `onread` fills on a socket, found by their descriptions on `from` (by default a socket
 * of our own, never connected: Node's constructor sets them, to null without `onread`); undefined
 * when `from` has none of those names.
 */
export function onreadSlots (from: object = new Socket()): Slots | undefined {
  const find = (name: string): symbol | undefined => Object.getOwnPropertySymbols(from).find((s) => s.description === name)
  const [buffer, callback, generator] = [find('kBuffer'), find('kBufferCb'), find('kBufferGen')]
  return buffer !== undefined && callback !== undefined && generator !== undefined ? { buffer, callback, generator } : undefined
}

/** This Node's slots (undefined on a Node without them: legs then read as they always did). */
export const ONREAD_SLOTS = onreadSlots()

type Slotted = Socket & Record<symbol, unknown> & { _handle?: { useUserBuffer?: unknown } | null, encrypted?: boolean }

/** What a borrowing socket calls with each read: `this` is the socket, `buffer[0, n)` the bytes. */
export type ReadCallback = (this: Socket, n: number, buffer: Buffer) => void

/**
 * What a borrowing socket calls after each read: a new buffer for the next reads (when the
 * current one must stay as it is: bytes of it are still being written), or undefined to keep it.
 */
export type NextBuffer = () => Buffer | undefined

/**
 * Whether `socket` can be switched now: a plain TCP socket (TLS decrypts in its own layer), open,
 * with nothing buffered (those bytes must be read first), on a Node with `onread`'s slots.
 */
export function canBorrow (socket: Socket, found: Slots | undefined): found is Slots {
  const s = socket as Slotted
  return found !== undefined && s.encrypted !== true && typeof s._handle?.useUserBuffer === 'function' && socket.readableLength === 0 && (s[found.buffer] ?? null) === null
}

/**
 * From now on, `socket`'s reads land in a `READ_SIZE` buffer of its own and go to `callback`
 * (their bytes valid until the socket is read again) instead of coming as 'data' events; after
 * each, `next` may hand it another buffer. 'end', 'close', pause() and resume() work as before.
 * Returns false, changing nothing, when it cannot.
 */
export function borrowReads (socket: Socket, callback: ReadCallback, next: NextBuffer, found = ONREAD_SLOTS): boolean {
  if (!canBorrow(socket, found)) return false
  const s = socket as Slotted
  const buffer = Buffer.allocUnsafe(READ_SIZE)
  s[found.buffer] = buffer
  s[found.generator] = next
  s[found.callback] = callback
  ;(s._handle as { useUserBuffer: (buffer: Buffer) => void }).useUserBuffer(buffer)
  return true
}
