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

/** How a leg ended, as far as the close of the other leg depends on it. */
export interface LegEnd {
  fromClient: boolean
  /** The gateway closed this leg for breaking the protocol: with a too-big message, or otherwise. */
  violation: 'too big' | 'other' | undefined
  /** The code it closed with: 1005 for none, 1006 when its connection ended without a close. */
  code: number
  reason: Buffer
}

/** The close the other leg gets (no code: no status), or `'cut'`: its connection is dropped. */
export type MirroredClose = { code: number | undefined, reason: string | Buffer } | 'cut'

/**
 * The README's close-code table, for both engines (a close the gateway planned comes first and
 * is each engine's own): after a violation the other side learns its peer went away (1001) or,
 * for a backend breaking the protocol, that the gateway got a bad answer (1014; 1001 for a
 * too-big message); no status is passed on as no status; a client gone without a close takes
 * the backend's connection with it, a backend gone without one becomes 1014; any other code and
 * reason are passed on.
 */
export function mirrorClose ({ fromClient, violation, code, reason }: LegEnd): MirroredClose {
  if (violation !== undefined) {
    return fromClient || violation === 'too big'
      ? { code: CloseCode.GOING_AWAY, reason: 'going away' }
      : { code: CloseCode.BAD_GATEWAY, reason: 'bad gateway' }
  }
  if (code === CloseCode.NO_STATUS) return { code: undefined, reason }
  if (code === CloseCode.ABNORMAL || !isSendable(code)) {
    return fromClient ? 'cut' : { code: CloseCode.BAD_GATEWAY, reason: 'bad gateway' }
  }
  return { code, reason }
}
