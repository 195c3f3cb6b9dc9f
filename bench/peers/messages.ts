/**
 * The gateway in message mode, from the built dist/ (as bench/peers/gateway.ts loads it): one
 * route, `echo`, to the HTTP echo backend (with a schema, so every message is validated) or to
 * the WebSocket echo backend.
 */
import Fastify from 'fastify'
import type { AddressInfo } from 'node:net'
import { announceReady, requiredArg } from '../child-ipc.js'
import { loadPlugin } from '../dist-plugin.js'

const distEntry = requiredArg(0, 'path of dist/index.js')
const kind = requiredArg(1, 'http or ws')
const backendUrl = requiredArg(2, 'backend URL')
const secret = requiredArg(3, 'JWT secret')

/** What the bench sends: `{ action: 'echo', id, text }`. */
const schema = {
  type: 'object',
  required: ['action', 'id', 'text'],
  properties: { action: { type: 'string' }, id: { type: 'integer' }, text: { type: 'string', maxLength: 4096 } }
}

async function main (): Promise<void> {
  const wsGateway = await loadPlugin(distEntry)
  const app = Fastify({ logger: false })
  const echo = kind === 'http' ? { http: `${backendUrl}/echo`, schema } : { ws: backendUrl }
  await app.register(wsGateway, { path: '/api', jwt: { secret }, messages: { maxInFlight: 16, routes: { echo } } })
  await app.listen({ host: '127.0.0.1', port: 0 })
  announceReady((app.server.address() as AddressInfo).port)
}

main().catch((error: unknown) => {
  process.stderr.write(`messages: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`)
  process.exit(1)
})
