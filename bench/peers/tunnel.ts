/**
 * Peer D: a raw TCP tunnel in Node — no framework, no authentication, no frame parsing. The
 * client's upgrade request is written to a fresh backend connection as it came, and from then on
 * the two sockets are piped to each other. It is the floor for any Node relay that opens one
 * backend connection per client: whatever a gateway adds (routing, a JWT, frame awareness) is
 * measured against it.
 */
import { createServer } from 'node:http'
import { connect } from 'node:net'
import type { AddressInfo, Socket } from 'node:net'
import { announceReady, requiredArg } from '../child-ipc.js'

const backendUrl = new URL(requiredArg(0, 'backend ws URL'))

const server = createServer((_request, response) => {
  response.writeHead(426, { upgrade: 'websocket' }).end()
})

server.on('upgrade', (request, client: Socket, head: Buffer) => {
  const backend = connect(Number(backendUrl.port), backendUrl.hostname)
  const lines = [`${request.method ?? 'GET'} ${request.url ?? '/'} HTTP/1.1`]
  for (let i = 0; i < request.rawHeaders.length; i += 2) lines.push(`${request.rawHeaders[i]}: ${request.rawHeaders[i + 1]}`)
  backend.write(`${lines.join('\r\n')}\r\n\r\n`)
  if (head.length > 0) backend.write(head)
  backend.setNoDelay(true)
  client.setNoDelay(true)
  backend.on('error', () => client.destroy())
  client.on('error', () => backend.destroy())
  backend.pipe(client).pipe(backend)
})

server.listen(0, '127.0.0.1', () => announceReady((server.address() as AddressInfo).port))
