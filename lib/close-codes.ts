/** Close codes the gateway sends of its own accord (RFC 6455 §7.4 and the IANA registry). */
export const CloseCode = Object.freeze({
  NORMAL: 1000,
  GOING_AWAY: 1001,
  NO_STATUS: 1005,
  ABNORMAL: 1006,
  POLICY: 1008,
  MESSAGE_TOO_BIG: 1009,
  SERVICE_RESTART: 1012,
  TRY_AGAIN_LATER: 1013,
  BAD_GATEWAY: 1014
})

/** The most a close reason may take: a control frame's 125 bytes less the 2-byte code. */
export const MAX_REASON_BYTES = 123

/** Whether a code may be put in a close frame (ws throws on the others). */
export function isSendable (code: number): boolean {
  return (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) ||
    (code >= 3000 && code <= 4999)
}

/**
 * A reason cut to 123 bytes without splitting a UTF-8 sequence: a cut that lands inside one
 * backs up to the sequence's first byte (continuation bytes are 0b10xxxxxx).
 */
export function truncateReason (reason: Buffer | string): Buffer {
  const bytes = typeof reason === 'string' ? Buffer.from(reason) : reason
  if (bytes.length <= MAX_REASON_BYTES) return bytes
  let end = MAX_REASON_BYTES
  while (end > 0 && (bytes[end] & 0xc0) === 0x80) end--
  return bytes.subarray(0, end)
}
