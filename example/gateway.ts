/*
 * The gateway: one Fastify app on HTTPS that serves ordinary REST routes and, at /ws, the
 * WebSocket gateway. A client sends `Authorization: Bearer <JWT>` and `id: Backend_XYZ` on the
 * upgrade; the gateway checks both and relays frames to that backend over plain WS. A browser,
 * which cannot set those headers, sends the token in its subprotocol list and the ID in the query:
 * the demo page at GET / does that.
 *
 * This is the file to copy. Run alone: `npm run example:gateway` (see .env.example).
 */
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import fastifyStatic from '@fastify/static'
import Fastify, { type FastifyInstance, type FastifyRequest, type FastifyServerOptions } from 'fastify'
import wsGateway, { type MessagesOptions } from '../lib/index'
import { signToken } from './client'
import { BACKEND_IDS, TOKEN_AUDIENCE, TOKEN_ISSUER, print, randomSecret, readConfig, stopOnSignal, writeHandoff, type Write } from './config'
import { loadCertificate, type TlsPair } from './tls'

export interface GatewayAppOptions {
  /** The HS256 secret tokens are signed with. */
  secret: string
  /** The HTTPS certificate and key (WSS on the client leg). */
  tls: TlsPair
  /** Backend ID → `ws://` URL. */
  backends: Record<string, string>
  /** Fastify's logger option; the combined sample uses `{ level: 'warn' }` to keep its output readable. */
  logger?: FastifyServerOptions['logger']
  /** Browser origins allowed besides the app's own (where the demo page is served). */
  allowedOrigins?: readonly string[]
  /** Message mode at /api (see example/messages.ts), with the Redis of its queue route if any. */
  messages?: { options: MessagesOptions, redisUrl?: string }
}

/**
 * Which backends a token grants: its `backends` claim, an array of IDs. Checked per connection
 * by the gateway's `authorize` option, so a valid token alone does not open every backend.
 */
export function mayReach (request: FastifyRequest, backendId: string): boolean {
  const claims = request.user as { backends?: unknown }
  return Array.isArray(claims.backends) && claims.backends.includes(backendId)
}

/**
 * Builds the gateway app (not listening yet).
 *
 * @example
 * ```ts
 * const app = await buildGateway({ secret, tls: await createCertificate(), backends: { Backend_ABC: 'ws://127.0.0.1:9001' } })
 * await app.listen({ port: 8443 })
 * ```
 */
export async function buildGateway (options: GatewayAppOptions): Promise<FastifyInstance> {
  const app = Fastify({ https: { cert: options.tls.cert, key: options.tls.key }, logger: options.logger ?? false })
  const otherOrigins = new Set(options.allowedOrigins)
  const jwt = { secret: options.secret, verify: { algorithms: ['HS256' as const], allowedIss: TOKEN_ISSUER, allowedAud: TOKEN_AUDIENCE } }
  const allowedOrigins = (origin: string, request: FastifyRequest): boolean => origin === `https://${request.headers.host}` || otherOrigins.has(origin)

  // The Redis of message mode's queue route is the cluster's, set on the app's first registration.
  const redisUrl = options.messages?.redisUrl
  await app.register(wsGateway, {
    path: '/ws',
    backends: options.backends,
    ...(redisUrl === undefined ? {} : { cluster: { redis: redisUrl } }),
    // Pin what a token must be: HS256 only (never `none` or an RSA/HS confusion), from our issuer,
    // for this gateway. `exp` is always required by the gateway.
    jwt,
    authorize: mayReach,
    // Browsers cannot set headers on a WebSocket: the page sends its token in the subprotocol list
    // (`['bearer', token]`, on by default) and the backend ID as `/ws?id=Backend_ABC`.
    idQuery: 'id',
    // Browsers let any page open a WebSocket to any host, with the user's cookies: accept only
    // pages from this app itself (the demo page at GET /) and the origins listed. Clients that
    // are not browsers send no Origin and are not affected.
    allowedOrigins,
    // Limits: every one has a default; these suit a chat-sized demo.
    maxPayload: 64 * 1024, // bytes per message, either way; larger closes with 1009
    idleTimeout: 5 * 60_000, // no data either way for 5 min: both legs closed
    heartbeatInterval: 30_000, // ping both legs; a leg that missed the last pong is dropped
    connectTimeout: 5_000 // the backend must accept within 5 s, or the client gets 504
  })

  // Message mode at another path of the same app: each JSON message is routed by its `action` to
  // an HTTP, WebSocket or queue backend and answered (see example/messages.ts).
  if (options.messages !== undefined) {
    await app.register(wsGateway, { path: '/api', jwt, allowedOrigins, messages: options.messages.options })
  }

  // Ordinary REST routes live next to the gateway in the same app.
  app.get('/health', async () => ({ status: 'ok', connections: app.wsGateway.stats().open }))
  app.get('/backends', async () => ({ backends: Object.keys(options.backends) }))

  // GET / — the browser demo page: plain files from example/public/, no build step.
  await app.register(fastifyStatic, { root: join(__dirname, 'public'), wildcard: false })

  // DEMO ONLY, delete in a real app: hands a 5-minute token for every backend to anyone who asks,
  // so that the page can connect. A real app's page gets its token from the app's own login.
  app.post('/demo/token', async (_request, reply) => {
    reply.header('cache-control', 'no-store')
    return { token: signToken(options.secret, { sub: 'demo-user', backends: Object.keys(options.backends) }) }
  })
  // DEMO ONLY: the gateway's refusal counters by error code. A browser reports a refused handshake
  // only as close code 1006, never with its HTTP status; the page shows what the gateway counted.
  app.get('/demo/refusals', async () => ({ rejected: app.wsGateway.stats().rejected }))

  return app
}

/** A listening gateway. */
export interface RunningGateway {
  app: FastifyInstance
  port: number
  /** The WebSocket endpoint, e.g. `wss://localhost:8443/ws`. */
  url: string
  close: () => Promise<void>
}

/** Builds the gateway and listens on `host:port` (port 0 = any free port). */
export async function startGateway (options: GatewayAppOptions & { host: string, port: number }): Promise<RunningGateway> {
  const app = await buildGateway(options)
  await app.listen({ host: options.host, port: options.port })
  const port = (app.server.address() as AddressInfo).port
  return { app, port, url: `wss://localhost:${port}/ws`, close: async () => { await app.close() } }
}

/**
 * `npm run example:gateway`: the gateway in front of backends on BACKEND_*_PORT, until Ctrl-C.
 * Unless CERT_FILE/KEY_FILE and JWT_SECRET are given, it makes a certificate and a secret and
 * leaves them in EXAMPLE_DIR for `npm run example:client`, removing them when it stops.
 */
export async function main (env: NodeJS.ProcessEnv = process.env, write: Write = print): Promise<RunningGateway> {
  const config = readConfig(env)
  const tls = await loadCertificate(config.certFile, config.keyFile)
  const secret = config.jwtSecret ?? randomSecret()
  const backends = Object.fromEntries(BACKEND_IDS.map((id) => [id, `ws://${config.host}:${config.backendPorts[id]}`]))
  const gateway = await startGateway({ secret, tls, backends, logger: { level: config.logLevel }, host: config.host, port: config.gatewayPort })
  // Written once the gateway listens, so that a failed start leaves nothing behind.
  const removeHandoff = await writeHandoff(config, {
    caPem: tls.generated ? tls.cert : undefined,
    secret: config.jwtSecret === undefined ? secret : undefined
  })
  write(`gateway listening on ${gateway.url} (REST: https://localhost:${gateway.port}/health, /backends)\n`)
  write(`demo page: https://localhost:${gateway.port}/ (the certificate is self-signed: your browser will warn)\n`)
  write(`for the client: ${tls.generated ? config.caFile : 'CA_FILE'}, ${config.jwtSecret === undefined ? join(config.dir, 'jwt-secret') : 'JWT_SECRET'}\n`)
  return {
    ...gateway,
    close: async () => {
      await gateway.close()
      await removeHandoff()
    }
  }
}

/* c8 ignore next -- only when this file is run directly (test/example.test.ts spawns it) */
if (require.main === module) main().then((g) => { stopOnSignal(g.close) }, (err) => { process.stderr.write(`${String(err)}\n`); process.exitCode = 1 })
