import type { FastifyBaseLogger } from 'fastify'
import type { LookupFunction } from 'node:net'
import type { Duplex } from 'node:stream'
import type WebSocket from 'ws'
import { BackendRefusedError, BadGatewayError, ClientGoneError, GatewayTimeoutError } from '../errors'
import type { RawLeg } from '../relay/passthrough/relay'
import type { BackendTlsOptions, ResolvedBackend, UpstreamHeaders } from '../options/types'
import type { EndpointTarget } from './pool'

/** An open backend connection, paused until the relay adopts it. */
export interface Upstream {
  /** The subprotocol the backend chose, or undefined for none. */
  readonly protocol: string | undefined
  /**
   * Hands the connection over to the relay, which owns its lifetime from then on: a WebSocket,
   * or on the raw path (`Attempt#raw`) the socket and the bytes that followed the backend's 101.
   */
  adopt: () => WebSocket | RawLeg
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
  /**
   * Open a plain net/tls connection with the gateway's own upgrade request (raw.ts) rather than a
   * ws WebSocket: only for the passthrough engine, and only when the backend takes no extension.
   */
  readonly raw: boolean
  /** Called when the socket will never be relayed (the attempt failed, or the client left first); may come twice. */
  readonly onDiscard: () => void
}

/** What an opening connection is asked for by `awaitOpen`. */
export interface Opening {
  /** Starts listening: `settle` is called once, with nothing once open or the error to answer. */
  listen: (settle: (err?: Error) => void) => void
  /** Takes the listeners `listen` put off; errors from now on are ignored until the relay adopts it. */
  unlisten: () => void
  /** Ends the connection at once (the attempt failed, or the client left). */
  terminate: () => void
}

/** The request an attempt sends, whichever way it is opened. */
export interface UpstreamRequest {
  readonly url: URL
  readonly headers: UpstreamHeaders
  readonly log: FastifyBaseLogger
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

/** A backend's refusal: a 4xx is passed through to the client, anything else is 502. */
export function refusal (log: FastifyBaseLogger, status: number): Error {
  log.warn({ status }, 'ws gateway backend refused the handshake')
  if (status >= 400 && status < 500) return Object.assign(new BackendRefusedError(status), { statusCode: status })
  return new BadGatewayError()
}

/**
 * Waits for `opening` to open within the attempt's timeout while the client stays; on failure it
 * is terminated. Returns what the relay's adoption calls: from then on the client leaving no
 * longer terminates it (the relay sees to both).
 */
export async function awaitOpen (attempt: Attempt, log: FastifyBaseLogger, opening: Opening): Promise<() => void> {
  const { client } = attempt
  // Node's HTTP server allows half-open sockets, so a client that leaves shows as 'end' first.
  const discard = (): void => {
    opening.terminate()
    attempt.onDiscard()
  }
  const adopted = (): void => {
    client.removeListener('end', discard)
    client.removeListener('close', discard)
  }
  client.once('end', discard)
  client.once('close', discard)
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      log.warn('ws gateway backend did not answer in time')
      settle(new GatewayTimeoutError())
    }, attempt.timeout)
    function settle (err?: Error): void {
      clearTimeout(timer)
      client.removeListener('end', onClientGone)
      client.removeListener('close', onClientGone)
      opening.unlisten()
      if (err === undefined) return resolve()
      adopted()
      discard()
      reject(err)
    }
    function onClientGone (): void {
      settle(new ClientGoneError())
    }
    client.once('end', onClientGone)
    client.once('close', onClientGone)
    opening.listen(settle)
  })
  return adopted
}

export function ignore (): void {}
