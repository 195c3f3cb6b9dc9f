import { isUtf8 } from 'node:buffer'
import { ConnectionGoneError, InvalidCloseCodeError, InvalidPayloadError, PayloadTooLargeError } from '../errors'
import { truncateReason } from '../relay/close-codes'
import type { Member, Outgoing, OutgoingClose } from './types'

/** Close codes the API sends: normal, going away, policy, the 1011–1014 server codes, and the application range. */
function isApiCloseCode (code: number): boolean {
  return code === 1000 || code === 1001 || code === 1008 || (code >= 1011 && code <= 1014) || (code >= 3000 && code <= 4999)
}

/**
 * A message as the API takes it: strings go as text and Buffers as binary unless `binary` says
 * otherwise; text must be UTF-8 (a client would close 1007 on anything else).
 */
export function outgoing (data: unknown, binary: unknown): Outgoing {
  if (typeof data !== 'string' && !Buffer.isBuffer(data)) throw new InvalidPayloadError('data must be a string or a Buffer')
  if (binary !== undefined && typeof binary !== 'boolean') throw new InvalidPayloadError('binary must be a boolean')
  const bytes = typeof data === 'string' ? Buffer.from(data) : data
  const isBinary = binary ?? Buffer.isBuffer(data)
  if (!isBinary && Buffer.isBuffer(data) && !isUtf8(data)) throw new InvalidPayloadError('text must be valid UTF-8')
  return { data: bytes, binary: isBinary }
}

/** A close as the API takes it: 1000 by default; reasons cut to 123 bytes on a UTF-8 boundary. */
export function outgoingClose (code: unknown = 1000, reason: unknown = ''): OutgoingClose {
  if (typeof code !== 'number' || !Number.isInteger(code) || !isApiCloseCode(code)) throw new InvalidCloseCodeError(String(code))
  if (typeof reason !== 'string') throw new InvalidCloseCodeError('the reason must be a string')
  return { code, reason: truncateReason(reason).toString() }
}

/** Writes a message to a member of this instance, within its path's `maxPayload`. */
export function deliver (member: Member | undefined, message: Outgoing): void {
  if (member === undefined) throw new ConnectionGoneError()
  if (message.data.length > member.maxPayload) throw new PayloadTooLargeError(member.maxPayload)
  member.push(message)
}
