/**
 * Peer E: the smallest honest @fastify/websocket frame relay. Each client socket gets its own
 * upstream ws; frames go both ways with the same text/binary flag; client frames that arrive
 * before the upstream is open are queued; close codes ws refuses to send (1005, 1006) are mapped.
 */
import Fastify from 'fastify'
import websocket from '@fastify/websocket'
import WebSocket from 'ws'
import type { AddressInfo } from 'node:net'
import { announceReady, requiredArg } from '../child-ipc.js'

const backendUrl = requiredArg(0, 'backend ws URL')

/** 1005 (no status) and 1006 (abnormal) are reserved: they may be received, never sent. */
function sendableCode (code: number): number {
  if (code === 1005) return 1000
  if (code === 1006) return 1011
  return code
}

function closeLeg (socket: WebSocket, code: number, reason: Buffer): void {
  if (socket.readyState === WebSocket.CLOSING || socket.readyState === WebSocket.CLOSED) return
  if (socket.readyState === WebSocket.CONNECTING) {
    socket.terminate()
    return
  }
  socket.close(sendableCode(code), reason)
}

async function main (): Promise<void> {
  const app = Fastify({ logger: false })
  await app.register(websocket, { options: { perMessageDeflate: false } })

  app.get('/ws', { websocket: true }, (client) => {
    const upstream = new WebSocket(backendUrl, { perMessageDeflate: false })
    const pending: Array<{ data: WebSocket.RawData, isBinary: boolean }> = []

    upstream.on('error', () => closeLeg(client, 1011, Buffer.alloc(0)))
    client.on('error', () => closeLeg(upstream, 1011, Buffer.alloc(0)))

    upstream.on('open', () => {
      for (const { data, isBinary } of pending) upstream.send(data, { binary: isBinary })
      pending.length = 0
    })
    client.on('message', (data, isBinary) => {
      if (upstream.readyState === WebSocket.OPEN) upstream.send(data, { binary: isBinary })
      else pending.push({ data, isBinary })
    })
    upstream.on('message', (data, isBinary) => client.send(data, { binary: isBinary }))

    client.on('close', (code, reason) => closeLeg(upstream, code, reason))
    upstream.on('close', (code, reason) => closeLeg(client, code, reason))
  })

  await app.listen({ host: '127.0.0.1', port: 0 })
  announceReady((app.server.address() as AddressInfo).port)
}

main().catch((error: unknown) => {
  process.stderr.write(`minimal-relay: ${String(error)}\n`)
  process.exit(1)
})
