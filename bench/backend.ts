/**
 * The ws@8 echo backend: every message goes back on the same socket with the same text/binary
 * flag. permessage-deflate is off so compression never enters a figure.
 */
import { WebSocketServer } from 'ws'
import type { AddressInfo } from 'node:net'
import { announceReady } from './child-ipc.js'

const server = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false })

server.on('connection', (socket) => {
  socket.on('error', () => socket.terminate())
  socket.on('message', (data, isBinary) => socket.send(data, { binary: isBinary }))
})

server.on('listening', () => announceReady((server.address() as AddressInfo).port))
