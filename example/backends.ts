/*
 * The three backend services of the sample: ABC, PQR and XYZ. Each is a plain `ws` server on
 * plain WS — the gateway terminates TLS and checks the token, so a backend only relays — and
 * answers every message so that you can tell which one you reached: text as `[ABC] echo: …`,
 * binary as binary, the bytes `[ABC] ` followed by the bytes received.
 *
 * Run alone: `npm run example:backends` (ports from BACKEND_ABC_PORT… see .env.example).
 */
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import { WebSocketServer } from 'ws'
import { BACKEND_IDS, print, readConfig, stopOnSignal, type BackendId, type Write } from './config'

/** A running backend. */
export interface BackendServer {
  id: BackendId
  /** Where the gateway connects to it, e.g. `ws://127.0.0.1:9001`. */
  url: string
  close: () => Promise<void>
}

/** The tag a backend puts in front of its answers: `[ABC]` for `Backend_ABC`. */
export function tagOf (id: BackendId): string {
  return `[${id.slice('Backend_'.length)}]`
}

/**
 * Starts one backend on `host:port` (port 0 = any free port).
 *
 * @example
 * ```ts
 * const abc = await startBackend('Backend_ABC', '127.0.0.1', 9001)
 * ```
 */
export async function startBackend (id: BackendId, host: string, port: number): Promise<BackendServer> {
  const tag = tagOf(id)
  const wss = new WebSocketServer({ host, port })
  wss.on('connection', (ws) => {
    ws.on('error', () => {}) // a client that goes away is not the backend's problem
    ws.on('message', (data: Buffer, isBinary) => {
      if (isBinary) ws.send(Buffer.concat([Buffer.from(`${tag} `), data]), { binary: true })
      else ws.send(`${tag} echo: ${data.toString()}`)
    })
  })
  await once(wss, 'listening')
  return {
    id,
    url: `ws://${host}:${(wss.address() as AddressInfo).port}`,
    close: async () => {
      for (const ws of wss.clients) ws.close(1001, 'backend shutting down')
      await new Promise((resolve) => wss.close(resolve))
    }
  }
}

/** The three running backends. */
export interface Backends {
  servers: BackendServer[]
  /** ID → URL: the gateway's `backends` option. */
  urls: Record<BackendId, string>
  close: () => Promise<void>
}

/** Starts the three backends. */
export async function startBackends (host: string, ports: Record<BackendId, number>): Promise<Backends> {
  const servers = await Promise.all(BACKEND_IDS.map(async (id) => await startBackend(id, host, ports[id])))
  return {
    servers,
    urls: Object.fromEntries(servers.map((s) => [s.id, s.url])) as Record<BackendId, string>,
    close: async () => { await Promise.all(servers.map(async (s) => await s.close())) }
  }
}

/** `npm run example:backends`: the three backends, until Ctrl-C. */
export async function main (env: NodeJS.ProcessEnv = process.env, write: Write = print): Promise<Backends> {
  const config = readConfig(env)
  const backends = await startBackends(config.host, config.backendPorts)
  for (const s of backends.servers) write(`${s.id} listening on ${s.url}\n`)
  return backends
}

/* c8 ignore next -- only when this file is run directly (test/example.test.ts spawns it) */
if (require.main === module) main().then((b) => { stopOnSignal(b.close) }, (err) => { process.stderr.write(`${String(err)}\n`); process.exitCode = 1 })
