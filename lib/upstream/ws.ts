import type { FastifyRequest } from 'fastify'
import type { IncomingMessage } from 'node:http'
import type { Duplex } from 'node:stream'
import WebSocket from 'ws'
import { BackendRefusedError, BadGatewayError, ClientGoneError, GatewayTimeoutError } from '../errors'
import { upstreamHeaders, upstreamUrl } from './headers'
import type { ResolvedBackend, ResolvedOptions } from '../options/types'

/** An open backend connection, paused until the relay adopts it. */
export interface Upstream {
  readonly socket: WebSocket
  /** The subprotocol the backend chose, or undefined for none. */
  readonly protocol: string | undefined
  /** Hands the socket over to the relay: from now on the relay owns its lifetime. */
  adopt: () => WebSocket
}

/**
 * Opens the backend connection before the client's upgrade is completed, so a refusal can still
 * be answered with an HTTP status: a 4xx from the backend is passed through, any other status or
 * an unreachable backend is 502, and no answer within `connectTimeout` is 504.
 *
 * Once open, the socket is paused: frames the backend sends at once wait in the kernel until the
 * relay resumes it, so none are lost while the client's upgrade completes. Until the relay adopts
 * it, the socket is terminated if the client (its upgrade socket, `client`) goes away or the
 * request ends in an error.
 */
export async function openUpstream (request: FastifyRequest, client: Duplex, backend: ResolvedBackend, opts: ResolvedOptions, offered: string[], connectionId: string): Promise<Upstream> {
  const headers = upstreamHeaders(request, backend, opts)
  // The gateway's own, after everything else: a client can never supply it.
  headers['x-connection-id'] = connectionId
  if (offered.length > 0) headers['sec-websocket-protocol'] = offered.join(', ')
  const socket = new WebSocket(upstreamUrl(request, backend, opts), {
    ...backend.tls,
    headers: headers as Record<string, string>,
    perMessageDeflate: backend.perMessageDeflate,
    maxPayload: backend.maxPayload,
    // The relay answers the backend's pings itself (one pong at a time, see the engines).
    autoPong: false,
    followRedirects: false
  })
  // Node's HTTP server allows half-open sockets, so a client that leaves shows as 'end' first.
  const terminate = (): void => socket.terminate()
  client.once('end', terminate)
  client.once('close', terminate)

  let protocol: string | undefined
  // The protocols go to the backend as a plain header rather than ws's `protocols` argument: ws
  // fails a handshake where it offered protocols and the server chose none, which is legal and
  // must reach the client as "none". The choice is read here and checked against the offer below.
  socket.on('upgrade', (res) => {
    protocol = res.headers['sec-websocket-protocol'] as string | undefined
    delete res.headers['sec-websocket-protocol']
  })

  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => settle(new GatewayTimeoutError()), opts.connectTimeout)
    function settle (err?: Error): void {
      clearTimeout(timer)
      client.removeListener('end', onClientGone)
      client.removeListener('close', onClientGone)
      socket.removeListener('open', onOpen)
      socket.removeListener('unexpected-response', onResponse)
      socket.removeListener('error', onError)
      // Errors after the handshake belong to the relay; until it attaches its own listener they
      // must still be caught, or one would crash the process.
      socket.on('error', ignore)
      if (err === undefined) return resolve()
      socket.terminate()
      reject(err)
    }
    function onOpen (): void {
      socket.pause()
      if (protocol !== undefined && !offered.includes(protocol)) {
        request.log.warn({ backendId: backend.id }, 'ws gateway backend chose a subprotocol the client did not offer')
        return settle(new BadGatewayError())
      }
      settle()
    }
    function onResponse (_req: unknown, res: IncomingMessage): void {
      res.resume()
      const status = res.statusCode as number
      request.log.warn({ backendId: backend.id, status }, 'ws gateway backend refused the handshake')
      if (status >= 400 && status < 500) {
        return settle(Object.assign(new BackendRefusedError(status), { statusCode: status }))
      }
      settle(new BadGatewayError())
    }
    function onError (err: Error): void {
      request.log.warn({ err, backendId: backend.id }, 'ws gateway backend unreachable')
      settle(new BadGatewayError())
    }
    function onClientGone (): void {
      settle(new ClientGoneError())
    }
    client.once('end', onClientGone)
    client.once('close', onClientGone)
    socket.once('open', onOpen)
    socket.once('unexpected-response', onResponse)
    socket.once('error', onError)
  })

  return {
    socket,
    protocol,
    adopt () {
      client.removeListener('end', terminate)
      client.removeListener('close', terminate)
      socket.removeListener('error', ignore)
      return socket
    }
  }
}

function ignore (): void {}
