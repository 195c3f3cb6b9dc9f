import { createHash } from 'node:crypto'

/*
 * The backend's answer to the gateway's own upgrade request (see raw.ts), read strictly: the
 * gateway offered no extension and a known list of subprotocols, so anything else is a broken
 * backend (502).
 */

/** The largest answer head (status line and headers) a backend may send: Node's own default limit. */
export const MAX_ANSWER_HEAD = 16 * 1024

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'
const STATUS_LINE = /^HTTP\/1\.[01] ([1-9]\d\d)(?: [^\r\n]*)?$/
const HEADER_LINE = /^([!#$%&'*+\-.^_`|~0-9A-Za-z]+):[ \t]*(.*?)[ \t]*$/
const END = Buffer.from('\r\n\r\n')

/** A backend answer the gateway cannot accept; the message says why (for the log). */
export class InvalidAnswer extends Error {}

/** A complete answer head, and the bytes that followed it in the same reads. */
export interface Answer {
  readonly status: number
  /** Header names in lower case; repeated headers joined with `, ` (as Node does). */
  readonly headers: ReadonlyMap<string, string>
  /** Bytes after the head (the backend's first frames), copied out of the reads. */
  readonly rest: Buffer
}

/** The `Sec-WebSocket-Accept` a backend must answer to `key` (RFC 6455 §4.2.2). */
export function acceptFor (key: string): string {
  return createHash('sha1').update(key + GUID).digest('base64')
}

/**
 * Gathers an answer head across reads. `feed` takes each chunk as it is read and keeps none of
 * it past the call (a reader may reuse its buffer); it returns the answer once the head is
 * complete, and throws `InvalidAnswer` when the head is malformed or longer than `MAX_ANSWER_HEAD`.
 */
export class AnswerReader {
  private buffered = Buffer.alloc(0)

  feed (chunk: Buffer): Answer | undefined {
    const from = Math.max(0, this.buffered.length - END.length + 1)
    this.buffered = Buffer.concat([this.buffered, chunk])
    const end = this.buffered.indexOf(END, from)
    if ((end === -1 ? this.buffered.length : end) > MAX_ANSWER_HEAD) throw new InvalidAnswer('answer head too long')
    if (end === -1) return undefined
    const answer = parseHead(this.buffered.toString('latin1', 0, end), Buffer.from(this.buffered.subarray(end + END.length)))
    this.buffered = Buffer.alloc(0)
    return answer
  }
}

function parseHead (head: string, rest: Buffer): Answer {
  const [statusLine, ...lines] = head.split('\r\n')
  const status = STATUS_LINE.exec(statusLine)
  if (status === null) throw new InvalidAnswer('malformed status line')
  const headers = new Map<string, string>()
  for (const line of lines) {
    const header = HEADER_LINE.exec(line)
    if (header === null) throw new InvalidAnswer('malformed header line')
    const name = header[1].toLowerCase()
    const seen = headers.get(name)
    headers.set(name, seen === undefined ? header[2] : `${seen}, ${header[2]}`)
  }
  return { status: Number(status[1]), headers, rest }
}

/**
 * Checks a 101 answer to an upgrade sent with `key` and the subprotocols `offered`: it must
 * upgrade to websocket, prove it read the key, negotiate no extension (none was offered) and
 * choose no subprotocol outside the offer. Returns the chosen subprotocol (undefined for none).
 */
export function checkUpgrade (answer: Answer, key: string, offered: readonly string[]): string | undefined {
  const { headers } = answer
  if (headers.get('upgrade')?.toLowerCase() !== 'websocket') throw new InvalidAnswer('Upgrade is not websocket')
  const connection = headers.get('connection')?.toLowerCase().split(',').map((token) => token.trim()) ?? []
  if (!connection.includes('upgrade')) throw new InvalidAnswer('Connection is not upgrade')
  if (headers.get('sec-websocket-accept') !== acceptFor(key)) throw new InvalidAnswer('wrong Sec-WebSocket-Accept')
  if (headers.has('sec-websocket-extensions')) throw new InvalidAnswer('an extension was not offered')
  const protocol = headers.get('sec-websocket-protocol')
  if (protocol !== undefined && !offered.includes(protocol)) throw new InvalidAnswer('a subprotocol the client did not offer')
  return protocol
}
