import { connect as netConnect, isIP, type Socket } from 'node:net'
import { connect as tlsConnect } from 'node:tls'
import { BadGatewayError } from '../errors'
import { randomText } from '../random'
import type { UpstreamHeaders } from '../options/types'
import { AnswerReader, checkUpgrade, type InvalidAnswer } from './answer'
import { awaitOpen, endpointOptions, refusal, type Attempt, type Upstream, type UpstreamRequest } from './attempt'

/** Header names the upgrade request writes itself: others' values for them are left out. */
const OWN_HEADERS = new Set(['connection', 'upgrade', 'sec-websocket-key', 'sec-websocket-version', 'sec-websocket-extensions'])

/**
 * The gateway's own HTTP/1.1 upgrade request: the URL's path and query, `Host` (unless the
 * headers name one, as Node's HTTP client does), the handshake's headers and `headers` (written
 * as Node would: an array as repeated lines, text as latin1).
 */
export function upgradeRequest (url: URL, key: string, headers: UpstreamHeaders): Buffer {
  const lines = [`GET ${url.pathname}${url.search} HTTP/1.1`]
  if (!Object.keys(headers).some((name) => name.toLowerCase() === 'host')) lines.push(`Host: ${url.host}`)
  lines.push('Connection: Upgrade', 'Upgrade: websocket', 'Sec-WebSocket-Version: 13', `Sec-WebSocket-Key: ${key}`)
  for (const [name, value] of Object.entries(headers)) {
    if (OWN_HEADERS.has(name.toLowerCase())) continue
    for (const one of Array.isArray(value) ? value : [value]) lines.push(`${name}: ${one}`)
  }
  return Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1')
}

/** A plain TCP or TLS connection to the URL's host, with the backend's TLS settings and the endpoint's pinned address. */
function dial (attempt: Attempt, url: URL): Socket {
  const secure = url.protocol === 'wss:' || url.protocol === 'https:'
  const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname
  const options = { ...endpointOptions(attempt.backend, attempt.endpoint), host, port: Number(url.port) || (secure ? 443 : 80) }
  // As ws does: the TLS server name is the host's, unless it is an address (SNI takes names only).
  return secure ? tlsConnect({ servername: isIP(host) === 0 ? host : '', ...options }) : netConnect(options)
}

/**
 * Opens the backend with a plain net/tls connection and the gateway's own upgrade request, for
 * the passthrough engine, which relays the raw socket anyway: no ws WebSocket and no HTTP client
 * are built only to be thrown away. The answer is read strictly (`checkUpgrade`); bytes the
 * backend sent right after its 101 are handed to the relay with the socket (`RawLeg#head`).
 *
 * The answer reader keeps none of the chunks it is fed, and the relay switches a leg that carries
 * bulk data to a reused read buffer (borrow.ts): this socket takes the same way as the client's.
 */
export async function openRaw (attempt: Attempt, { url, headers, log }: UpstreamRequest): Promise<Upstream> {
  const key = randomText(16, 'base64')
  const socket = dial(attempt, url)
  socket.write(upgradeRequest(url, key, headers))
  const reader = new AnswerReader()
  let protocol: string | undefined
  let head: Buffer = Buffer.alloc(0)

  const adopted = await awaitOpen(attempt, log, (settle) => ({
    emitter: socket,
    listeners: [
      ['data', (chunk: Buffer) => {
        let answer
        try {
          answer = reader.feed(chunk)
          if (answer === undefined) return
          // Whatever follows waits in the socket for the relay.
          socket.pause()
          if (answer.status !== 101) return settle(refusal(log, answer.status))
          protocol = checkUpgrade(answer, key, attempt.offered)
        } catch (err) {
          log.warn({ reason: (err as InvalidAnswer).message }, 'ws gateway backend answered the upgrade wrongly')
          return settle(new BadGatewayError())
        }
        head = answer.rest
        settle()
      }],
      ['close', () => {
        log.warn('ws gateway backend closed the connection before answering')
        settle(new BadGatewayError())
      }]
    ],
    terminate: () => socket.destroy()
  }))

  return {
    protocol,
    adopt () {
      adopted()
      return { socket, head }
    }
  }
}
