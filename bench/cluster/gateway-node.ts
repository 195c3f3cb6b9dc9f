/**
 * One instance of the gateway for the cluster bench: the plugin as users get it (see
 * dist-plugin.ts), with its connection registry on the run's redis-server, the REST surface on
 * (`managementApi`, authorized by a key of the run), and the bench's control channel (control.ts).
 * Started by the orchestrator, or as a node:cluster worker by workers.ts (all workers then listen
 * on the same port, each under its own node id).
 *
 *   node --import tsx bench/cluster/gateway-node.ts '<GatewayNodeSettings as JSON>'
 */
import cluster from 'node:cluster'
import type { AddressInfo } from 'node:net'
import { announceReady, requiredArg } from '../child-ipc.js'
import { gatewayApp } from '../dist-plugin.js'
import { serveControl } from './control.js'

export interface GatewayNodeSettings {
  /** The plugin's entry (dist/index.js, or lib/index.ts through tsx). */
  entry: string
  backendUrl: string
  secret: string
  /** The run's Redis; without it the gateway runs without `cluster` (one process, no registry in Redis). */
  redisUrl?: string
  nodeId: string
  /** Bearer key of the REST surface. */
  adminKey: string
  /** 0 for any free port; workers of one primary share the port they are given. */
  port: number
}

async function main (): Promise<void> {
  const settings = JSON.parse(requiredArg(0, 'settings as JSON')) as GatewayNodeSettings
  const nodeId = cluster.isWorker ? `${settings.nodeId}-w${cluster.worker?.id ?? 0}` : settings.nodeId
  const app = await gatewayApp(settings.entry, settings.backendUrl, settings.secret, {
    // The bench's connection counts are its own bound; the default 10,000 would cap larger runs.
    maxConnections: 0,
    ...(settings.redisUrl === undefined ? {} : { cluster: { redis: settings.redisUrl, nodeId } }),
    managementApi: { authorize: (request: { headers: Record<string, unknown> }) => request.headers.authorization === `Bearer ${settings.adminKey}` }
  })
  await app.listen({ host: '127.0.0.1', port: settings.port })
  serveControl({
    send: async (id, data) => await app.wsGateway.send(id, data),
    broadcast: async (data) => (await app.wsGateway.broadcast(data)).connections,
    count: async () => {
      let count = 0
      let cursor: string | undefined
      do {
        const page = await app.wsGateway.list({ limit: 1000, cursor })
        count += page.items.length
        cursor = page.cursor
      } while (cursor !== undefined)
      return count
    }
  })
  announceReady((app.server.address() as AddressInfo).port)
}

main().catch((error: unknown) => {
  process.stderr.write(`gateway node: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`)
  process.exit(1)
})
