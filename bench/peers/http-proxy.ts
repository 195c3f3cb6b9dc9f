/**
 * Peer B: @fastify/http-proxy 11 with `websocket: true`, configured as its README shows and
 * otherwise left at its defaults, the way most users run it.
 */
import Fastify from 'fastify'
import proxy from '@fastify/http-proxy'
import type { AddressInfo } from 'node:net'
import { announceReady, requiredArg } from '../child-ipc.js'

const backendUrl = new URL(requiredArg(0, 'backend ws URL'))

async function main (): Promise<void> {
  const app = Fastify({ logger: false })
  await app.register(proxy, {
    upstream: `http://${backendUrl.host}`,
    prefix: '/ws',
    rewritePrefix: '/ws',
    websocket: true,
    wsClientOptions: { perMessageDeflate: false },
    wsServerOptions: { perMessageDeflate: false }
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  announceReady((app.server.address() as AddressInfo).port)
}

main().catch((error: unknown) => {
  process.stderr.write(`http-proxy: ${String(error)}\n`)
  process.exit(1)
})
