import type { FastifyReply, FastifyRequest } from 'fastify'
import type { IncomingMessage } from 'node:http'
import { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { WebSocketServer } from 'ws'
import type { ResolvedBackend, ResolvedOptions } from '../options/types'
import { acceptFor } from '../upstream/answer'
import type { GatewayMessage } from './protocols'
import { kProtocol } from './protocols'

/*
 * The raw path: when the passthrough engine will relay a connection, the gateway completes the
 * client's upgrade itself — the same 101 ws would write — instead of having ws build a WebSocket
 * that the engine would only take the socket from. Everything before (Fastify's routing and
 * hooks, the preValidation chain) is the same on both paths.
 */

/** A `Sec-WebSocket-Protocol` list ws takes as it is: tokens, each once, commas between. */
const TOKEN = "[!#$%&'*+\\-.^_`|~0-9A-Za-z]+"
const PROTOCOL_LIST = new RegExp(`^${TOKEN}(?:[ \\t]*,[ \\t]*${TOKEN})*$`)

/**
 * The bytes the client sent past its upgrade request's head, as @fastify/websocket keeps them on
 * the request (under a symbol of its own, `ws-head`); undefined where it does not (then the
 * upgrade goes through ws, which is given them).
 */
function upgradeHead (raw: IncomingMessage): Buffer | undefined {
  for (const symbol of Object.getOwnPropertySymbols(raw)) {
    const value = (raw as unknown as Record<symbol, unknown>)[symbol]
    if (symbol.description === 'ws-head' && Buffer.isBuffer(value)) return value
  }
  return undefined
}

/** Whether ws would complete this upgrade without changing it: no extension, no hook of the app's, a protocol list it parses. */
function plainUpgrade (request: FastifyRequest, wss: WebSocketServer): boolean {
  const { 'sec-websocket-extensions': extensions, 'sec-websocket-protocol': protocols } = request.headers
  const options = wss.options
  return (options.perMessageDeflate === false || extensions === undefined) && options.verifyClient == null &&
    (protocols === undefined || (PROTOCOL_LIST.test(protocols) && new Set(protocols.split(',').map((p) => p.trim())).size === protocols.split(',').length))
}

/**
 * Decides the path of a relay-mode connection before its backend is opened: the client's head
 * bytes when the gateway will upgrade both legs itself (the raw path), or undefined when ws
 * upgrades them. The raw path needs the passthrough engine, a backend without permessage-deflate,
 * a client upgrade ws would complete plainly (no extension negotiated, no `verifyClient` on the
 * app's shared server) and a TCP socket (not `injectWS`'s stream).
 */
export function takesRawSockets (request: FastifyRequest, socket: Duplex, wss: WebSocketServer, opts: ResolvedOptions, backend: ResolvedBackend): Buffer | undefined {
  if (opts.engine !== 'passthrough' || backend.perMessageDeflate !== false || !(socket instanceof Socket)) return undefined
  return plainUpgrade(request, wss) ? upgradeHead(request.raw) : undefined
}

/**
 * Writes the client's 101 as ws's `completeUpgrade` would: the accept for its key, the
 * subprotocol the gateway chose for it (`kProtocol`, see `chooseProtocols`), and whatever the
 * server's 'headers' listeners add (the gateway's `x-connection-id`, the app's own). False, with
 * the socket destroyed, when the client has gone already.
 */
export function writeUpgrade (wss: WebSocketServer, request: FastifyRequest, socket: Socket): boolean {
  if (!socket.readable || !socket.writable) {
    socket.destroy()
    return false
  }
  const raw = request.raw as GatewayMessage
  const headers = [
    'HTTP/1.1 101 Switching Protocols',
    'Upgrade: websocket',
    'Connection: Upgrade',
    `Sec-WebSocket-Accept: ${acceptFor(request.headers['sec-websocket-key'] as string)}`
  ]
  const protocol = raw[kProtocol]
  if (typeof protocol === 'string') headers.push(`Sec-WebSocket-Protocol: ${protocol}`)
  wss.emit('headers', headers, raw)
  socket.write(headers.concat('\r\n').join('\r\n'))
  return true
}

/**
 * Makes the client's socket the gateway's: the upgrade's response and @fastify/websocket's error
 * guard let go of it. The guard's listeners are removed one by one: `removeListener` keeps a
 * socket's listener table in its fast shape (Node's `shapeMode`), where `removeAllListeners`
 * deletes the key and turns the table into a dictionary — ~0.8 KiB more per idle connection.
 */
export function takeSocket (reply: FastifyReply, socket: Socket): void {
  reply.raw.detachSocket(socket)
  for (const listener of socket.listeners('error')) socket.removeListener('error', listener as (err: Error) => void)
}
