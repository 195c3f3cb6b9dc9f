/**
 * The peers compared in one run, and how to start each one next to a fresh echo backend.
 * A peer's "relay" is the process(es) whose CPU and memory a figure charges to it.
 */
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { connect } from 'node:net'
import { join } from 'node:path'
import { forkTs, requestGc, requestGcStats, spawnProgram, stop, waitReady } from './children.js'
import type { Child } from './children.js'
import type { GcStatsMessage } from './protocol.js'
import { childPids, processRssKiB } from './proc.js'
import { freePort, nginxArgs, nginxVersion } from './peers/nginx.js'

export type PeerId = 'A' | 'gateway' | 'gateway-ws' | 'gateway-1w' | 'gateway-2w' | 'minimal' | 'http-proxy' | 'nginx' | 'tunnel'

export interface Paths {
  root: string
  bench: string
  distEntry: string
}

export interface StartedPeer {
  /** ws URL the load generator connects to. */
  url: string
  /** Processes charged with relay CPU; empty for A (nothing sits between client and backend). */
  relayPids: () => number[]
  /** RSS of the relay (of the backend for A) in KiB after a forced GC where possible. */
  memoryKiB: () => Promise<number>
  /** Whether memoryKiB could force a GC first. */
  gcForced: boolean
  /** The relay's collections so far, for a Node relay of one process (undefined otherwise). */
  gcStats?: () => Promise<GcStatsMessage>
  stop: () => Promise<void>
}

export interface PeerDef {
  id: PeerId
  label: string
  /** Why the peer cannot run here, or undefined when it can. */
  skipReason: (paths: Paths) => string | undefined
  start: (paths: Paths, backend: Child, backendPort: number, secret: string) => Promise<StartedPeer>
}

async function memoryOf (child: Child): Promise<number> {
  return (await requestGc(child)).rssKiB
}

/**
 * A Node relay child: started with --expose-gc (for the idle step's RSS reading) and with its
 * collections counted (BENCH_GC_STATS=1: which GC regime a throughput window ran in), announces
 * its port over IPC.
 */
async function startNodePeer (name: string, file: string, args: string[], paths: Paths): Promise<StartedPeer> {
  const relay = forkTs(name, join(paths.bench, 'peers', file), args, paths.root, ['--expose-gc'], { BENCH_GC_STATS: '1' })
  try {
    const port = await waitReady(relay)
    return {
      url: `ws://127.0.0.1:${port}/ws`,
      relayPids: () => [relay.pid],
      memoryKiB: async () => await memoryOf(relay),
      gcForced: true,
      gcStats: async () => await requestGcStats(relay),
      stop: async () => await stop(relay)
    }
  } catch (error) {
    await stop(relay)
    throw error
  }
}

async function waitListening (url: string, timeoutMs: number): Promise<void> {
  const { port } = new URL(url)
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(Number(port), '127.0.0.1')
      socket.once('connect', () => { socket.destroy(); resolve(true) })
      socket.once('error', () => resolve(false))
    })
    if (ok) return
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`nothing listening on ${url} after ${timeoutMs} ms`)
}

/** This project's plugin from the built dist/, with extra options for a variant. */
function gatewayPeer (id: PeerId, label: string, extra: Record<string, unknown>): PeerDef {
  return {
    id,
    label,
    skipReason: (paths) => existsSync(paths.distEntry)
      ? undefined
      : `${paths.distEntry} does not exist; run \`npm run build\` first`,
    start: async (paths, _backend, backendPort, secret) => await startNodePeer(
      id, 'gateway.ts', [paths.distEntry, `ws://127.0.0.1:${backendPort}`, secret, JSON.stringify(extra)], paths)
  }
}

/** A Node relay from bench/peers/ that takes the backend's URL as its only argument. */
function relayPeer (id: PeerId, label: string, file: string): PeerDef {
  return {
    id,
    label,
    skipReason: () => undefined,
    start: async (paths, _backend, backendPort) =>
      await startNodePeer(id, file, [`ws://127.0.0.1:${backendPort}`], paths)
  }
}

/** Peers run by default, in this order (reversed every other round). */
export const PEERS: readonly PeerDef[] = [
  {
    id: 'A',
    label: 'A direct',
    skipReason: () => undefined,
    start: async (_paths, backend, backendPort) => ({
      url: `ws://127.0.0.1:${backendPort}/ws`,
      relayPids: () => [],
      memoryKiB: async () => await memoryOf(backend),
      gcForced: true,
      stop: async () => {}
    })
  },
  gatewayPeer('gateway', 'gateway (this plugin)', {}),
  relayPeer('minimal', 'E minimal relay', 'minimal-relay.ts'),
  relayPeer('http-proxy', 'B @fastify/http-proxy', 'http-proxy.ts'),
  relayPeer('tunnel', 'D raw Node tunnel', 'tunnel.ts'),
  {
    id: 'nginx',
    label: 'C nginx',
    skipReason: () => nginxVersion() === undefined
      ? 'nginx is not on PATH (Debian/Ubuntu: apt-get install -y nginx-light)'
      : undefined,
    start: async (_paths, _backend, backendPort) => {
      const prefix = mkdtempSync(join(tmpdir(), 'ws-gateway-bench-nginx-'))
      const port = await freePort()
      const master = spawnProgram('nginx', 'nginx', nginxArgs(prefix, port, backendPort))
      const url = `ws://127.0.0.1:${port}/ws`
      const cleanup = async (): Promise<void> => {
        await stop(master)
        rmSync(prefix, { recursive: true, force: true })
      }
      try {
        await waitListening(url, 10_000)
      } catch (error) {
        await cleanup()
        throw error
      }
      const pids = (): number[] => [master.pid, ...childPids(master.pid)]
      return {
        url,
        relayPids: pids,
        // No GC to force in nginx; its pools are freed with the connection.
        memoryKiB: async () => pids().reduce((sum, pid) => sum + processRssKiB(pid), 0),
        gcForced: false,
        stop: cleanup
      }
    }
  }
]

/**
 * The gateway on `workers` node:cluster workers (peers/gateway-workers.ts). Its relay is the
 * primary (which accepts and hands out connections) and the workers; RSS is theirs summed, with
 * no GC forced.
 */
function workersPeer (id: PeerId, workers: number): PeerDef {
  return {
    id,
    label: `gateway, ${workers} cluster worker${workers === 1 ? '' : 's'}`,
    skipReason: (paths) => gatewayPeer(id, '', {}).skipReason(paths),
    start: async (paths, _backend, backendPort, secret) => {
      const args = [String(workers), paths.distEntry, `ws://127.0.0.1:${backendPort}`, secret]
      const primary = forkTs(id, join(paths.bench, 'peers', 'gateway-workers.ts'), args, paths.root)
      try {
        const port = await waitReady(primary)
        const pids = (): number[] => [primary.pid, ...childPids(primary.pid)]
        return {
          url: `ws://127.0.0.1:${port}/ws`,
          relayPids: pids,
          memoryKiB: async () => pids().reduce((sum, pid) => sum + processRssKiB(pid), 0),
          gcForced: false,
          stop: async () => await stop(primary)
        }
      } catch (error) {
        await stop(primary)
        throw error
      }
    }
  }
}

/** Peers run only when named with --peers. */
export const OPTIONAL_PEERS: readonly PeerDef[] = [
  // The gateway's ws message engine instead of its default frame passthrough.
  gatewayPeer('gateway-ws', 'gateway, engine ws', { engine: 'ws' }),
  // Many cores (issue 16 §3): `npm run bench:cores`.
  workersPeer('gateway-1w', 1),
  workersPeer('gateway-2w', 2)
]
