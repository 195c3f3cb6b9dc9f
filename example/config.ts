/*
 * What the sample's pieces share: the backend IDs, the token's issuer and audience, the settings
 * read from the environment (all optional, see .env.example), and the hand-off directory through
 * which a gateway started by hand tells the client its certificate and secret.
 */
import { randomBytes } from 'node:crypto'
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** The backends of the sample, as the client names them in the `id` header. */
export const BACKEND_IDS = ['Backend_ABC', 'Backend_PQR', 'Backend_XYZ'] as const
export type BackendId = typeof BACKEND_IDS[number]

/** Who signs the sample's tokens and for whom: the gateway accepts no other `iss`/`aud`. */
export const TOKEN_ISSUER = 'fastify-ws-gateway-example'
export const TOKEN_AUDIENCE = 'ws-gateway'

/** The sample's settings; every one has a default, so nothing needs preparing. */
export interface ExampleConfig {
  /** Interface the gateway and backends listen on. `HOST`, default 127.0.0.1. */
  host: string
  /** `GATEWAY_PORT`, default 8443 (0 = any free port). */
  gatewayPort: number
  /** `BACKEND_ABC_PORT`, `BACKEND_PQR_PORT`, `BACKEND_XYZ_PORT`: default 9001, 9002, 9003. */
  backendPorts: Record<BackendId, number>
  /** `GATEWAY_URL` for the client run alone, default `wss://localhost:<GATEWAY_PORT>/ws`. */
  gatewayUrl: string
  /** `JWT_SECRET`; unset, the gateway makes a random one (and hands it to the client, below). */
  jwtSecret?: string
  /** `CERT_FILE` + `KEY_FILE`: the gateway's PEM certificate and key; unset, it makes a throw-away pair. */
  certFile?: string
  keyFile?: string
  /** `CA_FILE`: the PEM certificate the client trusts, default `<EXAMPLE_DIR>/ca.pem`. */
  caFile: string
  /** `EXAMPLE_DIR`: the hand-off directory, default `<os tmpdir>/fastify-ws-gateway-example`. */
  dir: string
  /** `LOG_LEVEL` of the gateway run alone, default info. */
  logLevel: string
}

/** How the sample prints: it is a CLI, telling its story on stdout is its job. */
export type Write = (text: string) => void
export const print: Write = (text) => { process.stdout.write(text) }

function port (value: string | undefined, fallback: number): number {
  const parsed = Number(value || fallback)
  if (!Number.isInteger(parsed) || parsed < 0 || parsed > 65535) throw new Error(`invalid port: ${value}`)
  return parsed
}

/**
 * Reads the sample's settings from environment variables (empty means unset).
 *
 * @example
 * ```ts
 * const config = readConfig({ GATEWAY_PORT: '0' })
 * ```
 */
export function readConfig (env: NodeJS.ProcessEnv = process.env): ExampleConfig {
  const gatewayPort = port(env.GATEWAY_PORT, 8443)
  const dir = env.EXAMPLE_DIR || join(tmpdir(), 'fastify-ws-gateway-example')
  return {
    host: env.HOST || '127.0.0.1',
    gatewayPort,
    backendPorts: {
      Backend_ABC: port(env.BACKEND_ABC_PORT, 9001),
      Backend_PQR: port(env.BACKEND_PQR_PORT, 9002),
      Backend_XYZ: port(env.BACKEND_XYZ_PORT, 9003)
    },
    gatewayUrl: env.GATEWAY_URL || `wss://localhost:${gatewayPort}/ws`,
    jwtSecret: env.JWT_SECRET || undefined,
    certFile: env.CERT_FILE || undefined,
    keyFile: env.KEY_FILE || undefined,
    caFile: env.CA_FILE || join(dir, 'ca.pem'),
    dir,
    logLevel: env.LOG_LEVEL || 'info'
  }
}

/** A fresh HS256 secret: 256 random bits, as RFC 7518 asks for HS256 keys. */
export function randomSecret (): string {
  return randomBytes(32).toString('base64url')
}

/**
 * For a gateway run by hand: writes what the client must share with it (the certificate to trust
 * and, if it was generated, the secret) into the hand-off directory, readable by this user only.
 * Returns a function that removes those files again.
 */
export async function writeHandoff (config: ExampleConfig, files: { caPem?: string, secret?: string }): Promise<() => Promise<void>> {
  await mkdir(config.dir, { recursive: true, mode: 0o700 })
  const written: string[] = []
  if (files.caPem !== undefined) {
    await writeFile(config.caFile, files.caPem, { mode: 0o600 })
    written.push(config.caFile)
  }
  if (files.secret !== undefined) {
    const secretFile = join(config.dir, 'jwt-secret')
    await writeFile(secretFile, files.secret, { mode: 0o600 })
    written.push(secretFile)
  }
  return async () => {
    await Promise.all(written.map(async (file) => await rm(file, { force: true })))
  }
}

/** For the client run by hand: the CA to trust and the secret, from the env or the hand-off files. */
export async function readHandoff (config: ExampleConfig): Promise<{ ca: string, secret: string }> {
  const secret = config.jwtSecret ?? await readFile(join(config.dir, 'jwt-secret'), 'utf8')
  return { ca: await readFile(config.caFile, 'utf8'), secret }
}

/** What `stopOnSignal` uses of `process` (a test passes its own). */
export interface ProcessLike {
  on: (event: 'SIGINT' | 'SIGTERM', listener: (signal: NodeJS.Signals) => void) => unknown
  exit: (code: number) => void
  exitCode?: number | string | null
  stdout: { write: (text: string) => unknown }
  stderr: { write: (text: string) => unknown }
}

/**
 * Runs `stop` on Ctrl-C or SIGTERM, so no server outlives the command; the process then exits
 * with 130 (143 for SIGTERM) once nothing is left open. A second signal, or a stop that takes
 * longer than `graceMs`, ends the process at once.
 *
 * @example
 * ```ts
 * const backends = await startBackends('127.0.0.1', { Backend_ABC: 9001, Backend_PQR: 9002, Backend_XYZ: 9003 })
 * stopOnSignal(backends.close)
 * ```
 */
export function stopOnSignal (stop: () => Promise<void>, proc: ProcessLike = process, graceMs = 5000): void {
  let stopping = false
  const onSignal = (signal: NodeJS.Signals): void => {
    if (stopping) return proc.exit(130)
    stopping = true
    proc.stdout.write(`\n${signal}: stopping…\n`)
    setTimeout(() => proc.exit(130), graceMs).unref()
    stop().then(() => { proc.exitCode = signal === 'SIGINT' ? 130 : 143 }, (err: unknown) => {
      proc.stderr.write(`error while stopping: ${String(err)}\n`)
      proc.exit(1)
    })
  }
  proc.on('SIGINT', onSignal)
  proc.on('SIGTERM', onSignal)
}
