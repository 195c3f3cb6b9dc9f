/**
 * The obvious hand-written alternative to a message-mode HTTP route: a @fastify/websocket route
 * that parses each message and calls `undici.request` with it, answering `{ id, status, data }`.
 * No validation, no rate limit, no breaker, no timeout: the floor the gateway is held against.
 */
import Fastify from 'fastify'
import websocket from '@fastify/websocket'
import type { AddressInfo } from 'node:net'
import { request } from 'undici'
import { announceReady, requiredArg } from '../child-ipc.js'

const backendUrl = requiredArg(0, 'backend URL')

async function main (): Promise<void> {
  const app = Fastify({ logger: false })
  await app.register(websocket, { options: { perMessageDeflate: false } })
  app.get('/api', { websocket: true }, (socket) => {
    socket.on('message', (data: Buffer) => {
      const { id } = JSON.parse(data.toString()) as { id: number }
      request(`${backendUrl}/echo`, { method: 'POST', body: data, headers: { 'content-type': 'application/json' } })
        .then(async ({ statusCode, body }) => {
          socket.send(JSON.stringify({ id, status: statusCode, data: await body.json() }))
        })
        .catch(() => socket.send(JSON.stringify({ id, error: true })))
    })
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  announceReady((app.server.address() as AddressInfo).port)
}

main().catch((error: unknown) => {
  process.stderr.write(`handwritten: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`)
  process.exit(1)
})
