import { randomMask } from './mask'

// RFC 6455 §5.2 frame layout, as far as a relay that forwards payloads needs it: the header is read
// to learn where a frame ends and whether it is allowed; only control frames (at most 125 bytes)
// are ever decoded or built here.

export const OPCODE_CONTINUATION = 0x0
export const OPCODE_TEXT = 0x1
export const OPCODE_BINARY = 0x2
export const OPCODE_CLOSE = 0x8
export const OPCODE_PING = 0x9
export const OPCODE_PONG = 0xa

/** The largest payload a control frame may have (RFC 6455 §5.5). */
export const MAX_CONTROL_PAYLOAD = 125
/** The largest frame header: 2 bytes, an 8-byte extended length and a 4-byte mask key. */
export const MAX_HEADER_SIZE = 14

/** The first byte of every close frame this module builds (FIN + close opcode). */
export const CLOSE_FRAME_BYTE = 0x80 | OPCODE_CLOSE

/** An empty, unmasked ping: what a server sends its client (shared: it is never modified). */
export const SERVER_PING = Buffer.from([0x80 | OPCODE_PING, 0])
/** An empty, unmasked pong: the answer to a client's empty ping (shared: it is never modified). */
export const CLIENT_PONG = Buffer.from([0x80 | OPCODE_PONG, 0])

export const EMPTY = Buffer.alloc(0)

/**
 * How many bytes the header takes, from its second byte: 2, plus 2 or 8 of extended length, plus
 * 4 of mask key when the MASK bit is set.
 *
 * @example
 * ```ts
 * headerSize(0x85) // 6: a masked frame with a 5-byte payload
 * ```
 */
export function headerSize (secondByte: number): number {
  const length = secondByte & 0x7f
  return 2 + (length < 126 ? 0 : length === 126 ? 2 : 8) + ((secondByte & 0x80) === 0 ? 0 : 4)
}

/**
 * The payload length of the complete header at `at`, or -1 when it is 2^53 or more (a length no
 * `maxPayload` can allow; ws answers those with 1009 too).
 *
 * @example
 * ```ts
 * payloadLength(Buffer.from([0x82, 126, 1, 0]), 0) // 256
 * ```
 */
export function payloadLength (buf: Buffer, at: number): number {
  const length = buf[at + 1] & 0x7f
  if (length < 126) return length
  if (length === 126) return buf.readUInt16BE(at + 2)
  const high = buf.readUInt32BE(at + 2)
  if (high > 0x1fffff) return -1
  return high * 0x100000000 + buf.readUInt32BE(at + 6)
}

/**
 * What is wrong with a frame, from its first two bytes, or undefined when it may be relayed.
 * `fromClient` says which rule applies to the MASK bit; `inMessage` whether a fragmented data
 * message is in progress (a continuation is then expected, and only then). The reason becomes
 * the close reason of a 1002.
 *
 * @example
 * ```ts
 * frameProblem(0x81, 0x05, true, false) // 'client frames must be masked'
 * ```
 */
export function frameProblem (firstByte: number, secondByte: number, fromClient: boolean, inMessage: boolean): string | undefined {
  if ((firstByte & 0x70) !== 0) return 'RSV bits must be clear'
  const opcode = firstByte & 0x0f
  const masked = (secondByte & 0x80) !== 0
  if (fromClient !== masked) return fromClient ? 'client frames must be masked' : 'server frames must not be masked'
  if (opcode >= OPCODE_CLOSE) {
    if (opcode > OPCODE_PONG) return 'invalid opcode'
    if ((firstByte & 0x80) === 0) return 'control frames must not be fragmented'
    if ((secondByte & 0x7f) > MAX_CONTROL_PAYLOAD) return 'control frame too long'
    return undefined
  }
  if (opcode > OPCODE_BINARY) return 'invalid opcode'
  if (opcode === OPCODE_CONTINUATION) return inMessage ? undefined : 'unexpected continuation frame'
  return inMessage ? 'expected a continuation frame' : undefined
}

/**
 * A control frame (FIN set) with a payload of at most 125 bytes. A masked frame (gateway →
 * backend) gets a fresh random mask key, as RFC 6455 §5.3 asks of every client frame.
 *
 * @example
 * ```ts
 * socket.write(controlFrame(OPCODE_PONG, pingPayload, false))
 * ```
 */
export function controlFrame (opcode: number, payload: Buffer, masked: boolean): Buffer {
  const length = payload.length
  if (!masked) {
    const frame = Buffer.allocUnsafe(2 + length)
    frame[0] = 0x80 | opcode
    frame[1] = length
    payload.copy(frame, 2)
    return frame
  }
  const frame = Buffer.allocUnsafe(6 + length)
  frame[0] = 0x80 | opcode
  frame[1] = 0x80 | length
  randomMask(frame, 2)
  for (let i = 0; i < length; i++) frame[6 + i] = payload[i] ^ frame[2 + (i & 3)]
  return frame
}

/**
 * An unmasked data frame (gateway → client) carrying a whole message: a message the gateway sends
 * of its own (the registry API's `send`), never part of one it relays.
 *
 * @example
 * ```ts
 * socket.write(messageFrame(Buffer.from('hello'), false)) // a text frame
 * ```
 */
export function messageFrame (payload: Buffer, binary: boolean): Buffer {
  const length = payload.length
  const header = length < 126 ? 2 : length < 0x10000 ? 4 : 10
  const frame = Buffer.allocUnsafe(header + length)
  frame[0] = 0x80 | (binary ? OPCODE_BINARY : OPCODE_TEXT)
  if (header === 2) {
    frame[1] = length
  } else if (header === 4) {
    frame[1] = 126
    frame.writeUInt16BE(length, 2)
  } else {
    frame[1] = 127
    frame.writeUInt32BE(Math.floor(length / 0x100000000), 2)
    frame.writeUInt32BE(length >>> 0, 6)
  }
  payload.copy(frame, header)
  return frame
}

/**
 * A close frame: with a code and a reason (at most 123 bytes, see `truncateReason`), or without
 * a payload at all when `code` is undefined (what the peer reads as 1005).
 *
 * @example
 * ```ts
 * closeFrame(1001, Buffer.from('going away'), true)
 * ```
 */
export function closeFrame (code: number | undefined, reason: Buffer, masked: boolean): Buffer {
  if (code === undefined) return controlFrame(OPCODE_CLOSE, EMPTY, masked)
  const payload = Buffer.allocUnsafe(2 + reason.length)
  payload.writeUInt16BE(code, 0)
  reason.copy(payload, 2)
  return controlFrame(OPCODE_CLOSE, payload, masked)
}

/**
 * Unmasks a (small) payload in place with the 4-byte key at `key[keyAt]`. Only control frames
 * from clients are unmasked: data payloads are masked again, never unmasked (see mask.ts).
 */
export function unmask (payload: Buffer, key: Buffer, keyAt: number): void {
  for (let i = 0; i < payload.length; i++) payload[i] ^= key[keyAt + (i & 3)]
}
