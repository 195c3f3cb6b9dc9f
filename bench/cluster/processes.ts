/**
 * Starting the cluster bench's processes (each its own, stopped by PID through children.ts): the
 * run's redis-server, the echo backend, the server nodes of either peer, a gateway on node:cluster
 * workers, the client processes; and asking any of them something over IPC.
 */
import { spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { connect } from 'node:net'
import { join } from 'node:path'
import { forkTs, nextMessage, spawnProgram, stop, waitReady } from '../children.js'
import type { Child } from '../children.js'
import { freePort } from '../peers/nginx.js'
import type { GatewayNodeSettings } from './gateway-node.js'
import type { ClientRequest, NodeRequest, PeerKind } from './protocol.js'

/** What every process of a run shares. */
export interface RunSetup {
  root: string
  bench: string
  /** The plugin's entry the gateway nodes load. */
  entry: string
  secret: string
  adminKey: string
  /** Request headers of a gateway client: a token signed with `secret`, the backend id. */
  headers: Record<string, string>
}

export interface Started {
  child: Child
  port: number
}

/** Sends `message` and resolves with the child's next message of type `type` (or rejects on exit, failure, timeout). */
export async function ask<T extends { type: string }> (child: Child, message: ClientRequest | NodeRequest, type: T['type'], timeoutMs: number): Promise<T> {
  const answer = nextMessage<T>(child, type, timeoutMs)
  child.process.send(message)
  return await answer
}

/** Why redis-server cannot run here, or undefined. */
export function redisMissing (): string | undefined {
  const result = spawnSync('redis-server', ['--version'], { encoding: 'utf8', timeout: 10_000 })
  return result.error === undefined && result.status === 0
    ? undefined
    : 'redis-server is not on PATH (Debian/Ubuntu: apt-get install -y --no-install-recommends redis-server)'
}

async function answersPing (port: number): Promise<boolean> {
  return await new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1')
    socket.setTimeout(1_000, () => { socket.destroy(); resolve(false) })
    socket.once('error', () => resolve(false))
    socket.once('connect', () => socket.write('PING\r\n'))
    socket.once('data', (data) => { socket.destroy(); resolve(String(data).startsWith('+PONG')) })
  })
}

/** A redis-server of the run's own on a free port of 127.0.0.1, without persistence, once it answers PING. */
export async function startRedis (): Promise<Started & { url: string }> {
  const port = await freePort()
  const child = spawnProgram('redis', 'redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'])
  for (let i = 0; i < 100; i++) {
    if (await answersPing(port)) return { child, port, url: `redis://127.0.0.1:${port}` }
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  await stop(child)
  throw new Error(`redis-server on port ${port} did not answer PING within 5 s`)
}

/** Forks a child that announces a port, stopping it again if it never does. */
async function startAnnouncing (name: string, file: string, args: string[], setup: RunSetup): Promise<Started> {
  const child = forkTs(name, file, args, setup.root)
  try {
    return { child, port: await waitReady(child, 60_000) }
  } catch (error) {
    await stop(child)
    throw error
  }
}

export async function startBackend (setup: RunSetup): Promise<Started> {
  return await startAnnouncing('backend', join(setup.bench, 'backend.ts'), [], setup)
}

function gatewaySettings (setup: RunSetup, backendPort: number, redisUrl: string | undefined, nodeId: string, port: number): string {
  const settings: GatewayNodeSettings = {
    entry: setup.entry, backendUrl: `ws://127.0.0.1:${backendPort}`, secret: setup.secret, redisUrl, nodeId, adminKey: setup.adminKey, port
  }
  return JSON.stringify(settings)
}

/** One server instance of `peer` on the run's Redis (the gateway also needs the backend's port). */
export async function startNode (peer: PeerKind, setup: RunSetup, redisUrl: string, nodeId: string, backendPort: number): Promise<Started> {
  return peer === 'gateway'
    ? await startAnnouncing(`gateway ${nodeId}`, join(setup.bench, 'cluster', 'gateway-node.ts'),
      [gatewaySettings(setup, backendPort, redisUrl, nodeId, 0)], setup)
    : await startAnnouncing(`socket.io ${nodeId}`, join(setup.bench, 'cluster', 'socketio-node.ts'), [redisUrl], setup)
}

/**
 * The gateway for the handshake figure: `workers` node:cluster workers on one port under a
 * primary, or (`workers` 0) one plain process; with the registry on Redis unless `redisUrl` is
 * undefined.
 */
export async function startHandshakeGateway (setup: RunSetup, backendPort: number, redisUrl: string | undefined, workers: number): Promise<Started> {
  if (workers === 0) {
    return await startAnnouncing('gateway', join(setup.bench, 'cluster', 'gateway-node.ts'),
      [gatewaySettings(setup, backendPort, redisUrl, 'solo', 0)], setup)
  }
  return await startAnnouncing(`gateway on ${workers} workers`, join(setup.bench, 'cluster', 'workers.ts'),
    [String(workers), gatewaySettings(setup, backendPort, redisUrl, 'hs', await freePort())], setup)
}

/** A client process (clients.ts) or the load generator (load.ts), ready for requests. */
export async function startClientProcess (setup: RunSetup, name: string, file: string): Promise<Child> {
  const child = forkTs(name, join(setup.bench, file), [], setup.root)
  try {
    await waitReady(child)
    return child
  } catch (error) {
    await stop(child)
    throw error
  }
}

/** The soft limit on open files that children inherit (from /proc; Infinity when unlimited or unknown). */
export function openFilesLimit (): number {
  try {
    const match = /^Max open files\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'))
    return match === null || match[1] === 'unlimited' ? Number.POSITIVE_INFINITY : Number(match[1])
  } catch {
    return Number.POSITIVE_INFINITY
  }
}
