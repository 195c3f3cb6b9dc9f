import { once } from 'node:events'
import net, { type AddressInfo } from 'node:net'
import type { Registry } from 'prom-client'
import type WebSocket from 'ws'
import { authHeaders, connect, headersFor, nextMessage, startBackend, type Backend, type TestLike } from './helpers'

/** A replica of a pooled backend: answers `who` with its name, echoes anything else. */
export interface Replica extends Backend {
  name: string
  /** Set to a status to refuse handshakes with it (e.g. 503, 401); undefined accepts. */
  refuseWith: number | undefined
  /** Handshakes from clients (not from probes, which carry no X-Forwarded-For), accepted or refused. */
  clientHits: number
}

/**
 * Replicas named a, b, c … (from the `first` letter, 0 = a) on 127.0.0.1 and a port of their own,
 * or where `listen` says.
 */
export async function startReplicas (t: TestLike, count: number, first = 0, listen?: (i: number) => { host: string, port: number }): Promise<Replica[]> {
  return await Promise.all(Array.from({ length: count }, async (_, i) => {
    const name = String.fromCharCode(97 + first + i)
    const replica = { name, refuseWith: undefined, clientHits: 0 } as unknown as Replica
    Object.assign(replica, await startBackend(t, {
      ...listen?.(i),
      verifyClient: (info, accept) => {
        if (info.req.headers['x-forwarded-for'] !== undefined) replica.clientHits++
        const refuseWith = replica.refuseWith
        accept(refuseWith === undefined, refuseWith)
      },
      onConnection: (ws) => {
        ws.on('message', (data, isBinary) => ws.send(String(data) === 'who' ? name : data, { binary: isBinary }))
      }
    }))
    return replica
  }))
}

/** The name of the replica at the other end of a gateway connection. */
export async function whoIs (ws: WebSocket): Promise<string> {
  ws.send('who')
  return (await nextMessage(ws)).data.toString()
}

/**
 * Connects `times` times in turn (as `sub(i)` when given, else the default token), asks each time
 * which replica answered, and closes: the replicas in order.
 */
export async function whoAnswers (url: string, times: number, sub?: (i: number) => string): Promise<string[]> {
  const names: string[] = []
  for (let i = 0; i < times; i++) {
    const ws = await connect(url, sub === undefined ? authHeaders() : headersFor(sub(i)))
    names.push(await whoIs(ws))
    ws.close()
  }
  return names
}

/** A TCP server that accepts connections and never answers: a backend that hangs. */
export async function startBlackHole (t: TestLike): Promise<string> {
  const sockets = new Set<net.Socket>()
  const server = net.createServer((socket) => {
    sockets.add(socket)
    socket.on('error', () => {})
  }).listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(async () => {
    for (const socket of sockets) socket.destroy()
    await new Promise((resolve) => server.close(resolve))
  })
  return `ws://127.0.0.1:${(server.address() as AddressInfo).port}`
}

/** One sample of the Prometheus text format. */
export interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

/**
 * Parses the Prometheus text exposition format (version 0.0.4): comments and HELP/TYPE lines are
 * skipped, every sample line becomes a name, its labels (escapes undone) and its value.
 */
export function parseMetrics (text: string): Sample[] {
  const samples: Sample[] = []
  for (const line of text.split('\n')) {
    if (line === '' || line.startsWith('#')) continue
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)(?: \d+)?$/.exec(line)
    if (match === null) throw new Error(`not a sample line: ${line}`)
    const labels: Record<string, string> = {}
    for (const [, name, value] of (match[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) {
      labels[name] = value.replace(/\\(.)/g, (_, c: string) => c === 'n' ? '\n' : c)
    }
    samples.push({ name: match[1], labels, value: Number(match[3]) })
  }
  return samples
}

/** The value of the one sample with this name and these labels (among others); 0 when absent. */
export function valueOf (samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = samples.filter((sample) => sample.name === name &&
    Object.entries(labels).every(([key, value]) => sample.labels[key] === value))
  if (found.length > 1) throw new Error(`${found.length} samples of ${name} match ${JSON.stringify(labels)}`)
  return found[0]?.value ?? 0
}

/** The registry's samples now. */
export async function scrape (registry: Registry): Promise<Sample[]> {
  return parseMetrics(await registry.metrics())
}
