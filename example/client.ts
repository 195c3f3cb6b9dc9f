/*
 * The client: signs its own JWT, connects to the gateway over WSS trusting the sample's
 * certificate, names a backend in the `id` header, sends text and binary messages and prints what
 * comes back. Then it shows three connections the gateway refuses, with the HTTP status of each.
 *
 * Run alone: `npm run example:client -- Backend_PQR` (the gateway must be running; see .env.example).
 */
import { once } from 'node:events'
import { createSigner } from 'fast-jwt'
import WebSocket from 'ws'
import { BACKEND_IDS, TOKEN_AUDIENCE, TOKEN_ISSUER, print, randomSecret, readConfig, readHandoff, type Write } from './config'

export interface ClientOptions {
  /** The gateway's WebSocket endpoint, e.g. `wss://localhost:8443/ws`. */
  url: string
  /** The PEM certificate to trust (the gateway's self-signed one). */
  ca: string
  /** The HS256 secret shared with the gateway. */
  secret: string
  /** Where the story is printed: `print` (stdout) on the command line. */
  write: Write
  /** Milliseconds to wait for each step. Default 5000. */
  timeout?: number
}

/** What one backend answered. */
export interface Exchange {
  backendId: string
  replies: Array<{ data: Buffer, isBinary: boolean }>
  closeCode: number
}

/** A connection the gateway refused before the upgrade. */
export interface Refusal {
  what: string
  status: number
  code: string
}

/** The messages sent to each backend: two texts and a binary one. */
export const MESSAGES: ReadonlyArray<{ data: string | Buffer, binary: boolean }> = [
  { data: 'hello', binary: false },
  { data: 'héllo wörld ✓', binary: false },
  { data: Buffer.from([0x00, 0x01, 0x02, 0xff]), binary: true }
]

/**
 * Signs a token for the gateway: HS256, our issuer and audience, valid five minutes, with a
 * `backends` claim listing the IDs the user may reach.
 *
 * @example
 * ```ts
 * const token = signToken(secret, { sub: 'alice', backends: ['Backend_ABC'] })
 * ```
 */
export function signToken (secret: string, claims: { sub: string, backends: readonly string[] }): string {
  const signer = createSigner({ key: secret, algorithm: 'HS256', iss: TOKEN_ISSUER, aud: TOKEN_AUDIENCE, expiresIn: 5 * 60_000 })
  return signer(claims)
}

/** Bytes as text where printable, `\xNN` elsewhere: `[ABC] \x00\x01`. */
function showBytes (data: Buffer): string {
  return [...data].map((b) => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : `\\x${b.toString(16).padStart(2, '0')}`)).join('')
}

function show (data: string | Buffer, isBinary: boolean): string {
  return isBinary ? `binary ${showBytes(Buffer.from(data))}` : `text   ${JSON.stringify(data.toString())}`
}

/** Thrown when the gateway answers the upgrade with an HTTP error instead of 101. */
class RefusedError extends Error {
  constructor (readonly status: number, readonly code: string, message: string) {
    super(message)
  }
}

/** Opens a connection through the gateway, or rejects with a `RefusedError`. */
async function connect (backendId: string, token: string, options: ClientOptions): Promise<WebSocket> {
  const ws = new WebSocket(options.url, {
    headers: { authorization: `Bearer ${token}`, id: backendId },
    ca: options.ca,
    handshakeTimeout: options.timeout ?? 5000
  })
  await new Promise<void>((resolve, reject) => {
    ws.once('open', resolve)
    ws.on('error', reject)
    ws.once('unexpected-response', (_req, res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { body += chunk })
      res.on('end', () => {
        const { code, message } = JSON.parse(body) as { code: string, message: string } // Fastify's error JSON
        reject(new RefusedError(res.statusCode as number, code, message))
        ws.terminate() // ws leaves a refused handshake to the listener to end
      })
    })
  })
  return ws
}

/** The next message, or an error if the socket closes or nothing comes in time. */
async function nextReply (ws: WebSocket, timeout: number): Promise<{ data: Buffer, isBinary: boolean }> {
  const signal = AbortSignal.timeout(timeout)
  const [data, isBinary] = await Promise.race([
    once(ws, 'message', { signal }),
    once(ws, 'close', { signal }).then(([code]) => { throw new Error(`closed with ${String(code)} while waiting for a reply`) })
  ]) as [Buffer, boolean]
  return { data, isBinary }
}

/**
 * Talks to one backend through the gateway: sends `MESSAGES`, one at a time, prints each reply,
 * then closes with 1000.
 */
export async function talkTo (backendId: string, token: string, options: ClientOptions): Promise<Exchange> {
  const { write } = options
  const timeout = options.timeout ?? 5000
  write(`\n${backendId}\n`)
  const ws = await connect(backendId, token, options)
  const replies = []
  for (const { data, binary } of MESSAGES) {
    ws.send(data, { binary })
    write(`  → ${show(data, binary)}\n`)
    const reply = await nextReply(ws, timeout)
    replies.push(reply)
    write(`  ← ${show(reply.data, reply.isBinary)}\n`)
  }
  ws.close(1000, 'done')
  const [closeCode] = await once(ws, 'close', { signal: AbortSignal.timeout(timeout) }) as [number]
  write(`  closed with ${closeCode}\n`)
  return { backendId, replies, closeCode }
}

/** Tries a connection the gateway should refuse with `status`, and prints the answer. */
export async function expectRefusal (what: string, status: number, backendId: string, token: string, options: ClientOptions): Promise<Refusal> {
  const { write } = options
  try {
    const ws = await connect(backendId, token, options)
    ws.close(1000)
    throw new Error(`${what}: the gateway accepted it`)
  } catch (err) {
    if (!(err instanceof RefusedError)) throw err
    if (err.status !== status) throw new Error(`${what}: expected ${status}, got ${err.status} ${err.code}`)
    write(`  ✗ ${what}: ${err.status} ${err.code} (${err.message})\n`)
    return { what, status: err.status, code: err.code }
  }
}

/**
 * The client's whole story: each of `backendIds` in turn, then the refusals — a token signed with
 * another secret (401), an ID the token lists but the gateway does not know (404; an ID the token
 * does not list is 403 whether or not it exists), a backend the token does not list (403).
 */
export async function runClient (options: ClientOptions, backendIds: readonly string[] = BACKEND_IDS): Promise<{ exchanges: Exchange[], refusals: Refusal[] }> {
  const { write } = options
  const token = signToken(options.secret, { sub: 'demo-user', backends: BACKEND_IDS })
  write(`connecting to ${options.url} as demo-user\n`)
  const exchanges = []
  for (const id of backendIds) exchanges.push(await talkTo(id, token, options))

  write('\nrefused, as they should be\n')
  const refusals = [
    await expectRefusal('token signed with another secret', 401, 'Backend_ABC', signToken(randomSecret(), { sub: 'demo-user', backends: BACKEND_IDS }), options),
    await expectRefusal('unknown backend ID Backend_NOPE', 404, 'Backend_NOPE', signToken(options.secret, { sub: 'demo-user', backends: [...BACKEND_IDS, 'Backend_NOPE'] }), options),
    await expectRefusal('token without Backend_XYZ in its backends claim', 403, 'Backend_XYZ', signToken(options.secret, { sub: 'guest', backends: ['Backend_ABC'] }), options)
  ]
  return { exchanges, refusals }
}

/**
 * `npm run example:client -- [Backend_ID…]`: against a gateway started by hand, using the
 * certificate and secret it left in EXAMPLE_DIR (or CA_FILE and JWT_SECRET). All backends when no
 * ID is given.
 */
export async function main (argv: string[] = process.argv.slice(2), env: NodeJS.ProcessEnv = process.env, write: Write = print): Promise<Awaited<ReturnType<typeof runClient>>> {
  const config = readConfig(env)
  const { ca, secret } = await readHandoff(config)
  return await runClient({ url: config.gatewayUrl, ca, secret, write }, argv.length > 0 ? argv : BACKEND_IDS)
}

/* c8 ignore next -- only when this file is run directly (test/example.test.ts spawns it) */
if (require.main === module) main().catch((err) => { process.stderr.write(`${String(err)}\n`); process.exitCode = 1 })
