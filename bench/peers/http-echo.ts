/**
 * The HTTP backend of the message-mode bench: answers every request with its JSON body, status
 * 200, over keep-alive connections.
 */
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { announceReady } from '../child-ipc.js'

const server = http.createServer((req, res) => {
  const chunks: Buffer[] = []
  req.on('data', (chunk: Buffer) => chunks.push(chunk))
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'application/json' }).end(Buffer.concat(chunks))
  })
})
server.keepAliveTimeout = 60_000
server.listen(0, '127.0.0.1', () => announceReady((server.address() as AddressInfo).port))
