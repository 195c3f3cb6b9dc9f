/**
 * The two ways `npm run bench` runs every peer (issue 16 §1), and the processes of one peer:
 *
 * - **isolated**: a fresh echo backend, relay and load generator for every step, so no figure
 *   depends on what the processes served before it (a Node relay's 64 KiB figure does: see
 *   bench/README.md, "Method: what changed the 64 KiB figures").
 * - **long-lived**: one backend, relay and load generator per peer, started at the first round and
 *   kept until the mode ends; every round they serve a burst of idle connections and handshakes,
 *   then the small loads, then the large ones — what a gateway in production has been through.
 */
import { join } from 'node:path'
import { forkTs, stop, waitReady } from './children.js'
import type { Child } from './children.js'
import type { PeerDef, Paths, StartedPeer } from './peer-registry.js'
import type { StepContext, StepId, Timing } from './steps.js'

export type ModeId = 'isolated' | 'long-lived'

export interface ModeDef {
  id: ModeId
  label: string
  /** The steps in the order this mode runs them. */
  order: readonly StepId[]
}

export const MODES: readonly ModeDef[] = [
  {
    id: 'isolated',
    label: 'isolated: fresh backend, relay and load generator for every step',
    order: ['idle', 'tp64', 'tp1k', 'tp64k', 'lat64', 'lat64k', 'handshakes']
  },
  {
    id: 'long-lived',
    label: 'long-lived: one backend, relay and load generator per peer for all rounds; each round idle connections and handshakes, then small loads, then 64 KiB',
    order: ['idle', 'handshakes', 'tp64', 'lat64', 'tp1k', 'tp64k', 'lat64k']
  }
]

/** What starting a peer's processes needs. */
export interface ServerSetup {
  paths: Paths
  secret: string
  headers: Record<string, string>
  timing: Timing
}

/** A peer's processes: its echo backend, the relay itself and the load generator driving it. */
export interface Servers {
  backend: Child
  load: Child
  peer: StartedPeer
  context: StepContext
}

/** Start the backend, then the relay and the load generator side by side; on a failure stop what started. */
export async function startServers (peer: PeerDef, setup: ServerSetup): Promise<Servers> {
  const { paths } = setup
  const children: Child[] = []
  let started: StartedPeer | undefined
  try {
    const backend = forkTs('backend', join(paths.bench, 'backend.ts'), [], paths.root, ['--expose-gc'])
    children.push(backend)
    const load = forkTs('load', join(paths.bench, 'load.ts'), [], paths.root)
    children.push(load)
    const backendPort = await waitReady(backend)
    const [relay] = await Promise.all([peer.start(paths, backend, backendPort, setup.secret), waitReady(load)])
    started = relay
    const context: StepContext = { load, backend, peer: relay, target: { url: relay.url, headers: setup.headers }, timing: setup.timing }
    return { backend, load, peer: relay, context }
  } catch (error) {
    await started?.stop()
    for (const child of children.reverse()) await stop(child)
    throw error
  }
}

export async function stopServers (servers: Servers): Promise<void> {
  await servers.peer.stop()
  await stop(servers.load)
  await stop(servers.backend)
}
