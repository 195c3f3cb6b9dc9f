/*
 * `npm run start:cluster`: one gateway on several processes sharing one port (node:cluster
 * workers), with the connection registry on Redis. The primary starts a redis-server of its own
 * (unless REDIS_URL is set), the three backends — which announce themselves on Redis
 * (`announceBackend`), so the workers are configured with no backend at all — and the workers;
 * then a client opens connections
 * — they land on different workers — and reaches each of them through the REST surface of
 * whichever worker answers, lists a user's connections across workers and closes one. Exits 0
 * when every step went as expected. Needs Debian's `redis-server` (`npm start` does not).
 *
 * Settings: WORKERS (default 2), REDIS_URL (default: a redis-server of its own), HOST, GATEWAY_PORT.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import cluster from 'node:cluster'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import net from 'node:net'
import Fastify from 'fastify'
import WebSocket from 'ws'
import wsGateway, { announceBackend } from '../lib/index'
import { startBackends } from './backends'
import { signToken } from './client'
import { TOKEN_AUDIENCE, TOKEN_ISSUER, print, randomSecret, type Write } from './config'
import { mayReach } from './gateway'

interface WorkerEnv {
  REDIS_URL: string
  JWT_SECRET: string
  ADMIN_KEY: string
  HOST: string
  GATEWAY_PORT: string
}

/** A worker: one gateway instance, its node id the worker's, on the port all workers share. */
async function runWorker (env: WorkerEnv): Promise<void> {
  const app = Fastify({ logger: { level: 'warn' } })
  await app.register(wsGateway, {
    jwt: { secret: env.JWT_SECRET, verify: { algorithms: ['HS256'], allowedIss: TOKEN_ISSUER, allowedAud: TOKEN_AUDIENCE } },
    authorize: mayReach,
    cluster: { redis: env.REDIS_URL, nodeId: `worker-${cluster.worker?.id ?? 0}` },
    managementApi: { authorize: (request) => request.headers.authorization === `Bearer ${env.ADMIN_KEY}` }
  })
  await app.listen({ host: env.HOST, port: Number(env.GATEWAY_PORT) })
  process.on('message', (message) => {
    if (message === 'stop') app.close().then(() => process.exit(0), () => process.exit(1))
  })
  process.send?.('ready')
}

async function freePort (host: string): Promise<number> {
  const server = net.createServer().listen(0, host)
  await once(server, 'listening')
  const { port } = server.address() as net.AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}

/** A redis-server of the sample's own on a free port, without persistence. */
async function startRedis (host: string): Promise<{ url: string, stop: () => Promise<void> }> {
  if (spawnSync('redis-server', ['--version']).error !== undefined) {
    throw new Error('redis-server is missing: apt-get install -y --no-install-recommends redis-server (or set REDIS_URL)')
  }
  const port = await freePort(host)
  const child: ChildProcess = spawn('redis-server', ['--port', String(port), '--bind', host, '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
  for (let i = 0; i < 100; i++) {
    const socket = net.connect(port, host)
    // once(socket, 'connect') rejects on 'error': a refused connection is the answer false.
    const up = await once(socket, 'connect').then(() => true, () => false)
    socket.destroy()
    if (up) break
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return {
    url: `redis://${host}:${port}`,
    stop: async () => {
      const exited = once(child, 'exit')
      child.kill('SIGTERM')
      await exited
    }
  }
}

/** A client connection and the id (and so the worker) the gateway gave it. */
async function open (url: string, token: string): Promise<{ ws: WebSocket, id: string, messages: string[] }> {
  const ws = new WebSocket(url, { headers: { authorization: `Bearer ${token}`, id: 'Backend_ABC' }, perMessageDeflate: false })
  const [[response]] = await Promise.all([once(ws, 'upgrade'), once(ws, 'open')]) as [[{ headers: Record<string, string> }], unknown]
  const messages: string[] = []
  ws.on('message', (data) => messages.push(String(data)))
  return { ws, id: response.headers['x-connection-id'], messages }
}

async function until (check: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 250 && !check(); i++) await new Promise((resolve) => setTimeout(resolve, 20))
  if (!check()) throw new Error(`timed out waiting for ${what}`)
}

/**
 * The primary: starts Redis, the backends and the workers, runs the client's story, stops it all.
 *
 * @example
 * ```ts
 * await runClusterSample({ workers: 2, host: '127.0.0.1' }, print)
 * ```
 */
export async function runClusterSample (settings: { workers: number, host: string, port?: number, redisUrl?: string }, write: Write): Promise<void> {
  const { host, workers } = settings
  const stops: Array<() => Promise<void>> = []
  try {
    const redis = settings.redisUrl === undefined ? await startRedis(host) : { url: settings.redisUrl, stop: async () => {} }
    stops.push(redis.stop)
    const backends = await startBackends(host, { Backend_ABC: 0, Backend_PQR: 0, Backend_XYZ: 0 })
    stops.unshift(backends.close)
    // Each backend tells the gateways where it is; stopping withdraws it at once.
    for (const [id, url] of Object.entries(backends.urls)) stops.unshift(await announceBackend({ redis: redis.url, id, url, ttl: 10_000 }))
    const port = settings.port ?? await freePort(host)
    const env: WorkerEnv = { REDIS_URL: redis.url, JWT_SECRET: randomSecret(), ADMIN_KEY: randomBytes(16).toString('hex'), HOST: host, GATEWAY_PORT: String(port) }
    const forked = Array.from({ length: workers }, () => cluster.fork({ ...process.env, ...env }))
    stops.unshift(async () => {
      await Promise.all(forked.map(async (worker) => {
        if (worker.isDead()) return
        const exited = once(worker, 'exit')
        worker.send('stop')
        await exited
      }))
    })
    await Promise.all(forked.map(async (worker) => await once(worker, 'message')))
    write(`redis    ${redis.url}\nbackends ${Object.keys(backends.urls).join(', ')}, announced on Redis\ngateway  ws://${host}:${port}/ws on ${workers} workers (node:cluster), REST at /@connections\n\n`)

    const token = (sub: string): string => signToken(env.JWT_SECRET, { sub, backends: ['Backend_ABC'] })
    const clients: Array<{ sub: string, ws: WebSocket, id: string, messages: string[] }> = []
    for (const sub of ['alice', 'bob', 'alice', 'carol']) clients.push({ sub, ...await open(`ws://${host}:${port}/ws`, token(sub)) })
    for (const client of clients) write(`${client.sub.padEnd(6)} connected to ${client.id.split('.')[0]} as ${client.id}\n`)
    const nodes = new Set(clients.map((client) => client.id.split('.')[0]))
    if (nodes.size < 2 && workers > 1) write('(all landed on one worker this time: the REST calls below still go through Redis)\n')

    const rest = async (method: string, path: string, body?: string): Promise<Response> => {
      return await fetch(`http://${host}:${port}/@connections${path}`, { method, body, headers: { authorization: `Bearer ${env.ADMIN_KEY}`, 'content-type': 'text/plain' } })
    }
    for (const client of clients) {
      const res = await rest('POST', `/${client.id}`, `hello ${client.sub}, from whichever worker took this REST call`)
      if (res.status !== 204) throw new Error(`POST answered ${res.status}`)
    }
    await until(() => clients.every((client) => client.messages.length === 1), 'every client to get its message')
    write(`\nPOST /@connections/:id reached all ${clients.length} clients across workers, each once\n`)

    const alice = await (await rest('GET', '?sub=alice')).json() as { items: Array<{ id: string, node: string }> }
    if (alice.items.length !== 2) throw new Error(`alice has ${alice.items.length} connections listed, not 2`)
    write(`GET /@connections?sub=alice lists ${alice.items.length} connections, on ${alice.items.map((item) => item.node).join(' and ')}\n`)

    const carol = clients[3]
    const closed = once(carol.ws, 'close') as Promise<[number, Buffer]>
    await rest('DELETE', `/${carol.id}?code=4000&reason=bye`)
    const [code, reason] = await closed
    if (code !== 4000) throw new Error(`carol closed with ${code}`)
    write(`DELETE /@connections/${carol.id} closed carol's client: ${code} ${String(reason)}\n`)
    for (const client of clients) client.ws.close()
  } finally {
    for (const stop of stops) await stop()
  }
}

/* c8 ignore start -- only when this file is run (test/example-cluster.test.ts spawns it) */
if (cluster.isPrimary && require.main === module) {
  const workers = Number(process.env.WORKERS ?? 2)
  runClusterSample({ workers, host: process.env.HOST ?? '127.0.0.1', port: process.env.GATEWAY_PORT === undefined ? undefined : Number(process.env.GATEWAY_PORT), redisUrl: process.env.REDIS_URL }, print).then(() => {
    print('\ndone\n')
  }, (err) => {
    process.stderr.write(`\ncluster sample failed: ${String(err)}\n`)
    process.exitCode = 1
  })
} else if (cluster.isWorker) {
  runWorker(process.env as unknown as WorkerEnv).catch((err) => {
    process.stderr.write(`worker failed: ${String(err)}\n`)
    process.exit(1)
  })
}
/* c8 ignore stop */
