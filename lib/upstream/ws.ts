import type { FastifyRequest } from 'fastify'
import type { IncomingMessage } from 'node:http'
import type { LookupFunction } from 'node:net'
import type { Duplex } from 'node:stream'
import WebSocket from 'ws'
import { BackendRefusedError, BadGatewayError, ClientGoneError, GatewayTimeoutError } from '../errors'
import { upstreamHeaders, upstreamUrl } from './headers'
import type { BackendTlsOptions, ResolvedBackend, ResolvedOptions } from '../options/types'
import type { EndpointTarget } from './pool'

/** An open backend connection, paused until the relay adopts it. */
export interface Upstream {
  readonly socket: WebSocket
  /** The subprotocol the backend chose, or undefined for none. */
  readonly protocol: string | undefined
  /** Hands the socket over to the relay: from now on the relay owns its lifetime. */
  adopt: () => WebSocket
}

/** One attempt to open one endpoint of a backend. */
export interface Attempt {
  readonly backend: ResolvedBackend
  readonly endpoint: EndpointTarget
  /** Milliseconds this attempt may take before it fails with 504. */
  readonly timeout: number
  /** The client's subprotocol offer, without the gateway's token marker. */
  readonly offered: string[]
  /** The connection's id, sent to the backend as `X-Connection-Id`. */
  readonly connectionId: string
  /** The client's upgrade socket (a stream, not a net.Socket, under `injectWS`). */
  readonly client: Duplex
  /** Called when the socket will never be relayed (the attempt failed, or the client left first); may come twice. */
  readonly onDiscard: () => void
}

/** A lookup that always answers `address`: the endpoint was found through DNS already. */
function pinnedLookup (address: string, family: 4 | 6): LookupFunction {
  return (_hostname, options, callback) => {
    if (options.all === true) (callback as (err: null, addresses: Array<{ address: string, family: number }>) => void)(null, [{ address, family }])
    else callback(null, address, family)
  }
}

/**
 * Connection options for an endpoint: the backend's TLS settings, and a pinned address if it was
 * discovered (ws hands `lookup` on to net/tls.connect, though its types don't list it).
 */
export function endpointOptions (backend: ResolvedBackend, endpoint: EndpointTarget): BackendTlsOptions & { lookup?: LookupFunction } {
  if (endpoint.pinned === undefined) return backend.tls
  return { ...backend.tls, lookup: pinnedLookup(endpoint.pinned.address, endpoint.pinned.family) }
}

/**
 * Opens one backend endpoint before the client's upgrade is completed, so a refusal can still be
 * answered with an HTTP status: a 4xx from the backend is passed through (`BackendRefusedError`),
 * any other status or an unreachable endpoint is 502, and no answer within the attempt's timeout
 * is 504. The failover (`failover.ts`) decides what to try next.
 *
 * Once open, the socket is paused: frames the backend sends at once wait in the kernel until the
 * relay resumes it, so none are lost while the client's upgrade completes. Until the relay adopts
 * it, the socket is terminated if the client (its upgrade socket) goes away or the request ends in
 * an error.
 */
export async function openUpstream (request: FastifyRequest, opts: ResolvedOptions, attempt: Attempt): Promise<Upstream> {
  const { backend, endpoint, offered } = attempt
  const headers = upstreamHeaders(request, backend, opts)
  if (offered.length > 0) headers['sec-websocket-protocol'] = offered.join(', ')
  // The gateway's own, after everything else: a client can never supply it.
  headers['x-connection-id'] = attempt.connectionId
  const socket = new WebSocket(upstreamUrl(request, endpoint.url, opts), {
    ...endpointOptions(backend, endpoint),
    headers: headers as Record<string, string>,
    perMessageDeflate: backend.perMessageDeflate,
    maxPayload: backend.maxPayload,
    // The relay answers the backend's pings itself (one pong at a time, see the engines).
    autoPong: false,
    followRedirects: false
  })
  const log = request.log.child({ backendId: backend.id, endpoint: endpoint.key })
  // Node's HTTP server allows half-open sockets, so a client that leaves shows as 'end' first.
  const { client } = attempt
  const terminate = (): void => {
    socket.terminate()
    attempt.onDiscard()
  }
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
    const timer = setTimeout(() => {
      log.warn('ws gateway backend did not answer in time')
      settle(new GatewayTimeoutError())
    }, attempt.timeout)
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
      client.removeListener('end', terminate)
      client.removeListener('close', terminate)
      terminate()
      reject(err)
    }
    function onOpen (): void {
      socket.pause()
      if (protocol !== undefined && !offered.includes(protocol)) {
        log.warn('ws gateway backend chose a subprotocol the client did not offer')
        return settle(new BadGatewayError())
      }
      settle()
    }
    function onResponse (_req: unknown, res: IncomingMessage): void {
      res.resume()
      const status = res.statusCode as number
      log.warn({ status }, 'ws gateway backend refused the handshake')
      if (status >= 400 && status < 500) {
        return settle(Object.assign(new BackendRefusedError(status), { statusCode: status }))
      }
      settle(new BadGatewayError())
    }
    function onError (err: Error): void {
      log.warn({ err }, 'ws gateway backend unreachable')
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
