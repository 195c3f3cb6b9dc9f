/**
 * One instance of the peer users would pick for this: Socket.IO 4 with @socket.io/redis-adapter
 * on the run's redis-server (ioredis clients, as the adapter's README shows), WebSocket transport
 * only, default options otherwise (permessage-deflate is off by default in Socket.IO 4). `send`
 * is `io.to(socketId).emit('m', data)`, `broadcast` is `io.emit('m', data)`: the adapter
 * publishes each on Redis, and every other instance delivers to its own sockets. No
 * authentication: the figures compared are deliveries, not handshakes.
 *
 *   node --import tsx bench/cluster/socketio-node.ts <redis URL>
 */
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { createAdapter } from '@socket.io/redis-adapter'
import { Redis } from 'ioredis'
import { Server } from 'socket.io'
import { announceReady, requiredArg } from '../child-ipc.js'
import { serveControl } from './control.js'

async function main (): Promise<void> {
  const pub = new Redis(requiredArg(0, 'redis URL'))
  const sub = pub.duplicate()
  for (const client of [pub, sub]) client.on('error', (error) => process.stderr.write(`socket.io node redis: ${error.message}\n`))
  const http = createServer()
  const io = new Server(http, { transports: ['websocket'], serveClient: false, adapter: createAdapter(pub, sub) })
  // The adapter subscribed on creation; a PING answered after it means the subscriptions are in place.
  await sub.ping()
  await new Promise<void>((resolve) => http.listen(0, '127.0.0.1', resolve))
  serveControl({
    send: (id, data) => { io.to(id).emit('m', data) },
    broadcast: (data) => { io.emit('m', data); return undefined },
    // Asks every instance through the adapter (its request/response channel on Redis).
    count: async () => (await io.fetchSockets()).length
  })
  announceReady((http.address() as AddressInfo).port)
}

main().catch((error: unknown) => {
  process.stderr.write(`socket.io node: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`)
  process.exit(1)
})
