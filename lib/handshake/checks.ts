import type { FastifyReply, FastifyRequest } from 'fastify'
import { BadHandshakeError, UpgradeRequiredError } from '../errors'

const WEBSOCKET_KEY = /^[+/0-9A-Za-z]{22}==$/

/**
 * Rejects what is not an RFC 6455 handshake before any backend work is done: a plain request gets
 * 426, a non-websocket upgrade (e.g. h2c) or a malformed key 400, and a version other than 13
 * (ws would also take 8) 426 with the version we speak.
 */
export function checkHandshake (request: FastifyRequest, reply: FastifyReply): void {
  if (!request.ws) {
    reply.header('upgrade', 'websocket')
    throw new UpgradeRequiredError()
  }
  const { upgrade, 'sec-websocket-version': version, 'sec-websocket-key': key } = request.headers
  if (upgrade?.toLowerCase() !== 'websocket') throw new BadHandshakeError('Upgrade must be websocket')
  if (typeof key !== 'string' || !WEBSOCKET_KEY.test(key)) throw new BadHandshakeError('bad Sec-WebSocket-Key')
  // Compared as text: `injectWS` sends the version as a number.
  if (String(version) !== '13') {
    reply.header('sec-websocket-version', '13')
    throw new UpgradeRequiredError()
  }
}

/** What a client offered in `Sec-WebSocket-Protocol`. */
export interface ProtocolOffer {
  /** The protocols meant for the backend, in the client's order. */
  readonly protocols: string[]
  /** The token, when the client led its offer with the `tokenProtocol` marker and a token. */
  readonly token?: string
}

/**
 * Splits the client's subprotocol list (RFC 6455 §4.1: comma-separated): a browser that cannot
 * set headers sends `[marker, token, ...protocols]`; the marker and the token are the gateway's
 * and never reach the backend.
 */
export function protocolOffer (request: FastifyRequest, marker: string | false): ProtocolOffer {
  const header = request.headers['sec-websocket-protocol']
  const offered = header === undefined ? [] : header.split(',').map((p) => p.trim()).filter((p) => p !== '')
  if (marker === false || offered[0] !== marker) return { protocols: offered }
  return { protocols: offered.slice(2), token: offered[1] }
}
