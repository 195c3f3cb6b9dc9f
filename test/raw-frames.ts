import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import type { Socket } from 'node:net'
import { headerSize, payloadLength } from '../lib/relay/passthrough/frames'

// WebSocket frames as raw bytes, for the frame-level tests of the passthrough engine.

/** Raw sockets read by a `FrameReader`: a test file destroys them after each test. */
export const rawSockets = new Set<Socket>()

export interface Frame {
  fin: boolean
  rsv: number
  opcode: number
  masked: boolean
  /** The mask key, on a masked frame. */
  key?: Buffer
  payload: Buffer
}

/** A frame as a client (masked, by default) or a server would write it, or a broken one. */
export function frame (opcode: number, payload: Buffer | string = '', opts: { fin?: boolean, mask?: boolean, rsv?: number, key?: Buffer } = {}): Buffer {
  const { fin = true, mask = true, rsv = 0, key = randomBytes(4) } = opts
  const data = Buffer.from(payload)
  const n = data.length
  const extended = n < 126 ? Buffer.alloc(0) : n < 65536 ? Buffer.alloc(2) : Buffer.alloc(8)
  if (n >= 126 && n < 65536) extended.writeUInt16BE(n)
  if (n >= 65536) extended.writeUInt32BE(n, 4)
  const head = Buffer.from([(fin ? 0x80 : 0) | (rsv << 4) | opcode, (mask ? 0x80 : 0) | (n < 126 ? n : n < 65536 ? 126 : 127)])
  if (!mask) return Buffer.concat([head, extended, data])
  const masked = Buffer.from(data.map((b, i) => b ^ key[i & 3]))
  return Buffer.concat([head, extended, key, masked])
}

/** Reads the frames a raw socket receives (masked or not), in order. */
export class FrameReader {
  private buffer = Buffer.alloc(0)
  private readonly frames: Frame[] = []
  private wake: (() => void) | undefined
  ended = false

  constructor (readonly socket: Socket, head: Buffer = Buffer.alloc(0)) {
    rawSockets.add(socket)
    socket.on('error', () => {})
    socket.on('data', (chunk: Buffer) => this.push(chunk))
    // Half-closed counts as ended: the FIN is what these tests wait for.
    socket.on('end', () => { this.ended = true; this.wake?.() })
    socket.on('close', () => { this.ended = true; this.wake?.() })
    if (head.length > 0) this.push(head)
  }

  private push (chunk: Buffer): void {
    this.buffer = Buffer.concat([this.buffer, chunk])
    for (;;) {
      const b = this.buffer
      if (b.length < 2 || b.length < headerSize(b[1])) break
      const size = headerSize(b[1])
      const n = payloadLength(b, 0)
      if (b.length < size + n) break
      const masked = (b[1] & 0x80) !== 0
      const payload = Buffer.from(b.subarray(size, size + n))
      if (masked) for (let i = 0; i < n; i++) payload[i] ^= b[size - 4 + (i & 3)]
      const key = masked ? Buffer.from(b.subarray(size - 4, size)) : undefined
      this.frames.push({ fin: (b[0] & 0x80) !== 0, rsv: (b[0] >> 4) & 7, opcode: b[0] & 0x0f, masked, key, payload })
      this.buffer = b.subarray(size + n)
    }
    this.wake?.()
  }

  /** The next frame, or undefined once the socket has closed with none left. */
  async next (): Promise<Frame | undefined> {
    while (this.frames.length === 0 && !this.ended) await new Promise<void>((resolve) => { this.wake = resolve })
    return this.frames.shift()
  }

  /** The code and reason of the next frame, which must be a close frame. */
  async close (): Promise<{ code: number, reason: string }> {
    const f = await this.next()
    if (f === undefined || f.opcode !== 8) throw new Error(`expected a close frame, got ${f === undefined ? 'nothing' : `opcode ${f.opcode}`}`)
    return { code: f.payload.length === 0 ? 1005 : f.payload.readUInt16BE(0), reason: f.payload.subarray(2).toString() }
  }

  async closed (): Promise<void> {
    if (!this.ended) await once(this.socket, 'close')
  }

  /** Frames received so far, not yet read. */
  get queued (): number {
    return this.frames.length
  }
}
