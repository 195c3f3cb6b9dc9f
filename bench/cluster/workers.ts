/**
 * A gateway on node:cluster workers sharing one port, as a Node gateway uses more than one core
 * (the README's "Several instances on one machine"; `npm run start:cluster`). The primary forks
 * the workers (each runs gateway-node.ts with the node flags of the primary) and tells the
 * orchestrator the port once every worker listens. Workers exit when the primary goes.
 *
 *   node --import tsx bench/cluster/workers.ts <workers> '<GatewayNodeSettings as JSON, with a port>'
 */
import cluster from 'node:cluster'
import { once } from 'node:events'
import { join } from 'node:path'
import { announceReady, requiredArg } from '../child-ipc.js'
import type { ReadyMessage } from '../protocol.js'

async function main (): Promise<void> {
  const count = Number(requiredArg(0, 'number of workers'))
  const settings = requiredArg(1, 'settings as JSON')
  cluster.setupPrimary({ exec: join(__dirname, 'gateway-node.ts'), args: [settings] })
  const ports = await Promise.all(Array.from({ length: count }, async () => {
    const worker = cluster.fork()
    const [message] = await once(worker, 'message') as [ReadyMessage]
    return message.port
  }))
  announceReady(ports[0] ?? 0)
}

main().catch((error: unknown) => {
  process.stderr.write(`cluster primary: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`)
  process.exit(1)
})
