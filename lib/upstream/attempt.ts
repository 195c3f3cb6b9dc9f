import type { FastifyBaseLogger } from 'fastify'
import type { EventEmitter } from 'node:events'
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

/** A connection being opened (a WebSocket or a socket), as `awaitOpen` watches it. */
export interface Opening {
  readonly emitter: EventEmitter
  /** Its listeners until it opens or fails: they call `settle`. Its 'error' is taken care of (502). */
  readonly listeners: ReadonlyArray<readonly [event: string, listener: (...args: any[]) => void]>
  /** Ends the connection at once (the attempt failed, or the client left). */
  readonly terminate: () => void
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
 * Starts an attempt's connection (`open`, given how to settle it) and waits for it to open within
 * the attempt's timeout while the client stays: an 'error' before then is an unreachable backend
 * (502), and on any failure the connection is terminated. Resolves with what the relay's adoption
 * calls: from then on neither the client leaving nor an error is handled here any more (errors in
 * between are ignored, or one would crash the process).
 */
export async function awaitOpen (attempt: Attempt, log: FastifyBaseLogger, open: (settle: (err?: Error) => void) => Opening): Promise<() => void> {
  const { client } = attempt
  let opening!: Opening
  const discard = (): void => {
    opening.terminate()
    attempt.onDiscard()
  }
  const adopted = (): void => {
    client.removeListener('end', discard)
    client.removeListener('close', discard)
  }
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      log.warn('ws gateway backend did not answer in time')
      settle(new GatewayTimeoutError())
    }, attempt.timeout)
    function settle (err?: Error): void {
      clearTimeout(timer)
      client.removeListener('end', onClientGone)
      client.removeListener('close', onClientGone)
      const { emitter, listeners } = opening
      for (const [event, listener] of listeners) emitter.removeListener(event, listener)
      emitter.removeListener('error', onError)
      emitter.on('error', ignore)
      if (err === undefined) return resolve()
      adopted()
      discard()
      reject(err)
    }
    function onClientGone (): void {
      settle(new ClientGoneError())
    }
    function onError (err: Error): void {
      log.warn({ err }, 'ws gateway backend unreachable')
      settle(new BadGatewayError())
    }
    opening = open(settle)
    // Node's HTTP server allows half-open sockets, so a client that leaves shows as 'end' first.
    client.once('end', discard)
    client.once('close', discard)
    client.once('end', onClientGone)
    client.once('close', onClientGone)
    for (const [event, listener] of opening.listeners) opening.emitter.on(event, listener)
    opening.emitter.once('error', onError)
  })
  const { emitter } = opening
  return () => {
    adopted()
    emitter.removeListener('error', ignore)
  }
}

function ignore (): void {}
