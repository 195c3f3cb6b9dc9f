/**
 * The gateway peer on node:cluster workers sharing one port (issue 16 §3, "many cores"): the
 * primary forks N workers, each running peers/gateway.ts with the same arguments (the plugin from
 * dist/, one backend, JWT), and announces the port once every worker listens. Connections are
 * spread by the primary (round-robin, Node's default on Linux). No connection registry: only the
 * relay is measured here (bench/cluster.ts measures the registry on Redis).
 *
 *   node --import tsx bench/peers/gateway-workers.ts <workers> <dist entry> <backend ws URL> <JWT secret>
 */
import cluster from 'node:cluster'
import { once } from 'node:events'
import { join } from 'node:path'
import { announceReady, requiredArg } from '../child-ipc.js'
import type { ReadyMessage } from '../protocol.js'

async function main (): Promise<void> {
  const count = Number(requiredArg(0, 'number of workers'))
  cluster.setupPrimary({ exec: join(__dirname, 'gateway.ts'), args: process.argv.slice(3) })
  // Workers listening on port 0 all share the one port the primary picks for that key.
  const ports = await Promise.all(Array.from({ length: count }, async () => {
    const [message] = await once(cluster.fork(), 'message') as [ReadyMessage]
    return message.port
  }))
  if (new Set(ports).size !== 1) throw new Error(`workers listen on different ports: ${ports.join(', ')}`)
  announceReady(ports[0] ?? 0)
}

main().catch((error: unknown) => {
  process.stderr.write(`gateway workers: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`)
  process.exit(1)
})
