import type { IncomingMessage } from 'node:http'
import WebSocket from 'ws'
import { BadGatewayError } from '../errors'
import { awaitOpen, endpointOptions, refusal, type Attempt, type Upstream, type UpstreamRequest } from './attempt'

/** Opens the backend as a ws WebSocket (the ws engine, permessage-deflate, `injectWS`). */
export async function openWs (attempt: Attempt, { url, headers, log }: UpstreamRequest): Promise<Upstream> {
  const { backend, offered } = attempt
  const socket = new WebSocket(url, {
    ...endpointOptions(backend, attempt.endpoint),
    headers: headers as Record<string, string>,
    perMessageDeflate: backend.perMessageDeflate,
    maxPayload: backend.maxPayload,
    // The relay answers the backend's pings itself (one pong at a time, see the engines).
    autoPong: false,
    followRedirects: false
  })

  let protocol: string | undefined
  // The protocols go to the backend as a plain header rather than ws's `protocols` argument: ws
  // fails a handshake where it offered protocols and the server chose none, which is legal and
  // must reach the client as "none". The choice is read here and checked against the offer below.
  socket.on('upgrade', (res) => {
    protocol = res.headers['sec-websocket-protocol'] as string | undefined
    delete res.headers['sec-websocket-protocol']
  })

  const adopted = await awaitOpen(attempt, log, (settle) => ({
    emitter: socket,
    listeners: [
      ['open', () => {
        socket.pause()
        if (protocol !== undefined && !offered.includes(protocol)) {
          log.warn('ws gateway backend chose a subprotocol the client did not offer')
          return settle(new BadGatewayError())
        }
        settle()
      }],
      ['unexpected-response', (_req: unknown, res: IncomingMessage) => {
        res.resume()
        settle(refusal(log, res.statusCode as number))
      }]
    ],
    terminate: () => socket.terminate()
  }))

  return {
    protocol,
    adopt () {
      adopted()
      return socket
    }
  }
}
