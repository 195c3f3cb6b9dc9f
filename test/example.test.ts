import { spawn } from 'node:child_process'
import { EventEmitter, once } from 'node:events'
import { existsSync } from 'node:fs'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import https from 'node:https'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { createSigner } from 'fast-jwt'
import WebSocket from 'ws'
import { main as backendsMain, startBackend, startBackends, tagOf } from '../example/backends'
import { expectRefusal, main as clientMain, MESSAGES, signToken, talkTo, type ClientOptions } from '../example/client'
import { BACKEND_IDS, TOKEN_AUDIENCE, TOKEN_ISSUER, print, randomSecret, readConfig, readHandoff, stopOnSignal, writeHandoff, type BackendId } from '../example/config'
import { main as gatewayMain, startGateway, type RunningGateway } from '../example/gateway'
import { runSample } from '../example/index'
import { messageOptions, runMessageClient, startMessageBackends } from '../example/messages'
import type { Frame, TestLike } from './helpers'
import { createCertificate, loadCertificate, type TlsPair } from '../example/tls'

/** Every port 0: the sample on whatever ports are free. */
const RANDOM_PORTS = { GATEWAY_PORT: '0', BACKEND_ABC_PORT: '0', BACKEND_PQR_PORT: '0', BACKEND_XYZ_PORT: '0' }

/** What a backend should answer to each of the client's MESSAGES. */
function expectedReplies (id: BackendId): Array<{ text?: string, hex?: string }> {
  return MESSAGES.map(({ data, binary }) => binary
    ? { hex: Buffer.concat([Buffer.from(`${tagOf(id)} `), data as Buffer]).toString('hex') }
    : { text: `${tagOf(id)} echo: ${data as string}` })
}

function repliesOf (replies: Array<{ data: Buffer, isBinary: boolean }>): Array<{ text?: string, hex?: string }> {
  return replies.map(({ data, isBinary }) => isBinary ? { hex: data.toString('hex') } : { text: data.toString() })
}

async function tempDir (t: TestLike): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'ws-gateway-example-'))
  t.teardown(async () => { await rm(dir, { recursive: true, force: true }) })
  return dir
}

let tlsPair: TlsPair | undefined
async function sharedTls (): Promise<TlsPair> {
  tlsPair ??= await createCertificate()
  return tlsPair
}

/** The three backends and a gateway in front of them, on random ports; closed at teardown. */
async function startAll (t: TestLike, allowedOrigins?: string[]): Promise<{ gateway: RunningGateway, client: ClientOptions }> {
  const backends = await startBackends('127.0.0.1', { Backend_ABC: 0, Backend_PQR: 0, Backend_XYZ: 0 })
  t.teardown(backends.close)
  const secret = randomSecret()
  const tls = await sharedTls()
  const gateway = await startGateway({ secret, tls, backends: backends.urls, host: '127.0.0.1', port: 0, allowedOrigins })
  t.teardown(gateway.close)
  return { gateway, client: { url: gateway.url, ca: tls.cert, secret, write: () => {} } }
}

/** A GET over real HTTPS, trusting the sample's certificate. */
async function httpsGet (port: number, path: string, ca: string): Promise<{ status: number, body: unknown }> {
  const res = (await once(https.get({ host: 'localhost', port, path, ca }), 'response'))[0]
  let body = ''
  for await (const chunk of res) body += chunk
  return { status: res.statusCode, body: JSON.parse(body) }
}

t.test('the whole sample: every backend answers the client through the gateway, and refusals have their status', async (t) => {
  let output = ''
  const report = await runSample(readConfig(RANDOM_PORTS), {
    write: (text) => { output += text },
    onStart: (stop) => { t.teardown(stop) } // runSample stops everything itself; this is in case it cannot
  })
  t.same(report.exchanges.map((e) => e.backendId), BACKEND_IDS)
  for (const exchange of report.exchanges) {
    const id = exchange.backendId as BackendId
    t.same(repliesOf(exchange.replies), expectedReplies(id), `${id} answered text as text and binary as binary`)
    t.equal(exchange.closeCode, 1000, `${id} closed with 1000`)
  }
  t.same(report.refusals.map((r) => [r.status, r.code]), [
    [401, 'FST_WS_GATEWAY_INVALID_TOKEN'],
    [404, 'FST_WS_GATEWAY_UNKNOWN_BACKEND'],
    [403, 'FST_WS_GATEWAY_FORBIDDEN']
  ])
  t.match(output, /← text {3}"\[PQR\] echo: hello"/)
  t.match(output, /← binary \[XYZ\] \\x00\\x01\\x02\\xff/)
  t.match(output, /✗ unknown backend ID Backend_NOPE: 404 FST_WS_GATEWAY_UNKNOWN_BACKEND/)
  t.match(output, /\nmessage mode at wss:\/\/localhost:\d+\/api\n/)
  t.same(report.messages.map((frame) => [(frame as Frame).type, (frame as Frame).code ?? (frame as Frame).route]), [
    ['reply', 'chat.send'],
    ['error', 'FST_WS_GATEWAY_INVALID_MESSAGE'],
    ['error', 'FST_WS_GATEWAY_UNKNOWN_ROUTE'],
    ['message', 'prices.watch'],
    ['message', 'prices.watch'],
    ['message', 'prices.watch'],
    ['reply', 'report.build']
  ], 'an HTTP reply, two error frames, a stream and a queue reply (redis-server is installed for the tests)')
  t.match(report.messages[6], { data: { report: '2026 for demo-user' } })
})

t.test('message mode without redis-server: the queue route is left out, and the client says it skipped it', async (t) => {
  const backends = await startMessageBackends('127.0.0.1', 'no-such-redis-server')
  t.teardown(backends.close)
  t.equal(backends.redisUrl, undefined)
  const options = messageOptions(backends)
  t.notOk('report.build' in (options.routes ?? {}))
  const secret = randomSecret()
  const tls = await sharedTls()
  const gateway = await startGateway({ secret, tls, backends: { Backend_ABC: 'ws://127.0.0.1:1' }, messages: { options }, host: '127.0.0.1', port: 0 })
  t.teardown(gateway.close)
  let output = ''
  const token = signToken(secret, { sub: 'demo-user', backends: [] })
  const frames = await runMessageClient({ url: gateway.url.replace(/\/ws$/, '/api'), ca: tls.cert, token, queue: false, write: (text) => { output += text } })
  t.equal(frames.length, 6)
  t.match(output, /skipped the queue route report\.build: redis-server is not installed/)
})

t.test('a redis-server that does not come up fails the message backends\' start', async (t) => {
  await t.rejects(startMessageBackends('127.0.0.1', 'true'), /true did not start/)
})

t.test('a sample stopped while the client runs ends with an error instead of hanging', async (t) => {
  await t.rejects(runSample(readConfig(RANDOM_PORTS), { write: () => {}, onStart: (stop) => { stop().catch(() => {}) } }))
})

t.test('the REST routes answer next to the gateway, over HTTPS', async (t) => {
  const { gateway, client } = await startAll(t)
  t.same(await httpsGet(gateway.port, '/health', client.ca), { status: 200, body: { status: 'ok', connections: 0 } })
  t.same(await httpsGet(gateway.port, '/backends', client.ca), { status: 200, body: { backends: BACKEND_IDS } })
  const plain = await gateway.app.inject({ url: '/ws' })
  t.equal(plain.statusCode, 426, 'the WebSocket route refuses plain HTTP')
})

t.test('the demo page and its demo-only routes: a token from /demo/token connects the way a browser does', async (t) => {
  const { gateway, client } = await startAll(t)
  const page = await gateway.app.inject({ url: '/' })
  t.equal(page.statusCode, 200)
  t.match(page.headers['content-type'], /^text\/html/)
  t.match(page.body, /<script src="app.js" defer>/)
  for (const file of ['/app.js', '/style.css']) t.equal((await gateway.app.inject({ url: file })).statusCode, 200, file)
  t.equal((await gateway.app.inject({ url: '/nothing-here' })).statusCode, 404)

  const issued = await gateway.app.inject({ method: 'POST', url: '/demo/token' })
  t.equal(issued.headers['cache-control'], 'no-store')
  const { token } = issued.json<{ token: string }>()
  t.match(JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString()), { sub: 'demo-user', backends: BACKEND_IDS, iss: TOKEN_ISSUER, aud: TOKEN_AUDIENCE })
  // What the page does: ID in the query, token in the subprotocol list, from the app's own origin.
  const origin = `https://localhost:${gateway.port}`
  const ws = new WebSocket(`${client.url}?id=Backend_PQR`, ['bearer', token], { ca: client.ca, origin })
  await once(ws, 'open')
  t.equal(ws.protocol, 'bearer')
  ws.send('hi')
  t.equal(String((await once(ws, 'message'))[0]), '[PQR] echo: hi')
  ws.close(1000)
  await once(ws, 'close')

  t.same((await gateway.app.inject({ url: '/demo/refusals' })).json(), { rejected: {} })
  const refused = new WebSocket(`${client.url}?id=Backend_PQR`, ['bearer', `${token}x`], { ca: client.ca, origin })
  refused.on('error', () => {})
  t.equal((await once(refused, 'unexpected-response'))[1].statusCode, 401)
  refused.terminate()
  t.same((await gateway.app.inject({ url: '/demo/refusals' })).json(), { rejected: { FST_WS_GATEWAY_INVALID_TOKEN: 1 } })
})

t.test('/health counts the open connections', async (t) => {
  const { gateway, client } = await startAll(t)
  const token = signToken(client.secret, { sub: 'u', backends: ['Backend_ABC'] })
  const ws = new WebSocket(client.url, { headers: { authorization: `Bearer ${token}`, id: 'Backend_ABC' }, ca: client.ca })
  await once(ws, 'open')
  t.same((await gateway.app.inject({ url: '/health' })).json(), { status: 'ok', connections: 1 })
  ws.close(1000)
  await once(ws, 'close')
})

t.test('browsers may connect from the app\'s own origin and the listed ones only', async (t) => {
  const { gateway, client } = await startAll(t, ['https://app.example'])
  const token = signToken(client.secret, { sub: 'u', backends: ['Backend_ABC'] })
  const withOrigin = async (origin: string): Promise<number> => {
    const ws = new WebSocket(client.url, { headers: { authorization: `Bearer ${token}`, id: 'Backend_ABC' }, ca: client.ca, origin })
    return await new Promise((resolve) => {
      ws.on('error', () => {})
      ws.once('open', () => { ws.close(1000); resolve(101) })
      ws.once('unexpected-response', (_req, res) => { res.resume(); ws.terminate(); resolve(res.statusCode as number) })
    })
  }
  t.equal(await withOrigin(`https://localhost:${gateway.port}`), 101, 'same origin')
  t.equal(await withOrigin('https://app.example'), 101, 'listed origin')
  t.equal(await withOrigin('https://evil.example'), 403, 'other origin')
})

t.test('a token must list the backend in its backends claim, and come from our issuer', async (t) => {
  const { client } = await startAll(t)
  const noClaim = createSigner({ key: client.secret, iss: TOKEN_ISSUER, aud: TOKEN_AUDIENCE, expiresIn: 60_000 })({ sub: 'u' })
  t.equal((await expectRefusal('no backends claim', 403, 'Backend_ABC', noClaim, client)).code, 'FST_WS_GATEWAY_FORBIDDEN')
  const otherIssuer = createSigner({ key: client.secret, iss: 'someone-else', aud: TOKEN_AUDIENCE, expiresIn: 60_000 })({ sub: 'u', backends: BACKEND_IDS })
  t.equal((await expectRefusal('other issuer', 401, 'Backend_ABC', otherIssuer, client)).code, 'FST_WS_GATEWAY_INVALID_TOKEN')
})

t.test('the client reports a refusal with an unexpected status, and an accepted connection that should not be', async (t) => {
  const { client } = await startAll(t)
  const token = signToken(client.secret, { sub: 'u', backends: BACKEND_IDS })
  await t.rejects(expectRefusal('an ID the token does not list', 401, 'Backend_NOPE', token, client), /expected 401, got 403/)
  await t.rejects(expectRefusal('a good connection', 401, 'Backend_ABC', token, client), /the gateway accepted it/)
  await t.rejects(talkTo('Backend_ABC', token, { ...client, ca: (await createCertificate()).cert }), /self-signed certificate/, 'an untrusted certificate fails')
})

t.test('the client fails when the backend hangs up instead of answering', async (t) => {
  const { client } = await startAll(t)
  const token = signToken(client.secret, { sub: 'u', backends: BACKEND_IDS })
  // A gateway whose Backend_ABC closes every connection at once.
  const rude = new WebSocket.Server({ host: '127.0.0.1', port: 0 })
  rude.on('connection', (ws) => { ws.close(1011, 'no') })
  await once(rude, 'listening')
  t.teardown(() => new Promise((resolve) => rude.close(resolve)))
  const gateway = await startGateway({ secret: client.secret, tls: await sharedTls(), backends: { Backend_ABC: `ws://127.0.0.1:${(rude.address() as { port: number }).port}` }, host: '127.0.0.1', port: 0 })
  t.teardown(gateway.close)
  await t.rejects(talkTo('Backend_ABC', token, { ...client, url: gateway.url }), /closed with 1011 while waiting for a reply/)
})

t.test('a backend that stops closes its clients with 1001', async (t) => {
  const backend = await startBackend('Backend_ABC', '127.0.0.1', 0)
  t.teardown(backend.close)
  const ws = new WebSocket(backend.url)
  await once(ws, 'open')
  ws.send(Buffer.from([1]))
  t.same((await once(ws, 'message')).map(String), ['[ABC] \x01', 'true'], 'binary answered as binary')
  const closed = once(ws, 'close')
  await backend.close()
  t.equal((await closed)[0], 1001)
})

t.test('print writes to stdout', async (t) => {
  const writes = t.capture(process.stdout, 'write', () => true)
  print('story')
  writes.restore()
  t.same(writes.args(), [['story']])
})

t.test('Ctrl-C runs stop once; a second Ctrl-C, a stuck stop or a failing one exits at once', async (t) => {
  const fakeProcess = (): EventEmitter & { exits: number[], exitCode?: number | string | null, out: string, err: string, exit: (code: number) => void, stdout: { write: (s: string) => void }, stderr: { write: (s: string) => void } } => {
    const proc = Object.assign(new EventEmitter(), {
      exits: [] as number[],
      exitCode: undefined as number | string | null | undefined,
      out: '',
      err: '',
      exit: (code: number) => { proc.exits.push(code) },
      stdout: { write: (text: string) => { proc.out += text } },
      stderr: { write: (text: string) => { proc.err += text } }
    })
    return proc
  }
  const tick = async (ms = 0): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

  const stuck = fakeProcess()
  let stops = 0
  let release = (): void => {}
  stopOnSignal(async () => { stops++; await new Promise<void>((resolve) => { release = resolve }) }, stuck, 20)
  stuck.emit('SIGINT', 'SIGINT')
  t.equal(stops, 1)
  t.match(stuck.out, /SIGINT: stopping…/)
  stuck.emit('SIGINT', 'SIGINT')
  t.same(stuck.exits, [130], 'a second Ctrl-C exits at once')
  await tick(40)
  t.same(stuck.exits, [130, 130], 'a stop that outlasts the grace period exits')
  release()
  await tick()
  t.equal(stuck.exitCode, 130)
  t.equal(stops, 1, 'stop ran once')

  const term = fakeProcess()
  stopOnSignal(async () => {}, term, 1000)
  term.emit('SIGTERM', 'SIGTERM')
  await tick()
  t.equal(term.exitCode, 143)
  t.same(term.exits, [])

  const failing = fakeProcess()
  stopOnSignal(async () => { throw new Error('boom') }, failing, 1000)
  failing.emit('SIGINT', 'SIGINT')
  await tick()
  t.same(failing.exits, [1])
  t.match(failing.err, /error while stopping: Error: boom/)
})

t.test('settings come from the environment, with defaults', async (t) => {
  const defaults = readConfig({})
  t.match(defaults, {
    host: '127.0.0.1',
    gatewayPort: 8443,
    backendPorts: { Backend_ABC: 9001, Backend_PQR: 9002, Backend_XYZ: 9003 },
    gatewayUrl: 'wss://localhost:8443/ws',
    jwtSecret: undefined,
    certFile: undefined,
    keyFile: undefined,
    logLevel: 'info'
  })
  t.equal(defaults.caFile, join(defaults.dir, 'ca.pem'))
  t.same(readConfig({
    HOST: '0.0.0.0',
    GATEWAY_PORT: '443',
    BACKEND_ABC_PORT: '1',
    BACKEND_PQR_PORT: '2',
    BACKEND_XYZ_PORT: '3',
    GATEWAY_URL: 'wss://gw.example/ws',
    JWT_SECRET: 's',
    CERT_FILE: 'c.pem',
    KEY_FILE: 'k.pem',
    CA_FILE: 'ca.pem',
    EXAMPLE_DIR: '/x',
    LOG_LEVEL: 'debug'
  }), {
    host: '0.0.0.0',
    gatewayPort: 443,
    backendPorts: { Backend_ABC: 1, Backend_PQR: 2, Backend_XYZ: 3 },
    gatewayUrl: 'wss://gw.example/ws',
    jwtSecret: 's',
    certFile: 'c.pem',
    keyFile: 'k.pem',
    caFile: 'ca.pem',
    dir: '/x',
    logLevel: 'debug'
  })
  t.throws(() => readConfig({ GATEWAY_PORT: '70000' }), /invalid port: 70000/)
  t.throws(() => readConfig({ BACKEND_ABC_PORT: 'abc' }), /invalid port: abc/)
  t.not(randomSecret(), randomSecret())
  t.equal(Buffer.from(randomSecret(), 'base64url').length, 32)
})

t.test('the certificate is generated, or read from CERT_FILE and KEY_FILE', async (t) => {
  const generated = await loadCertificate()
  t.equal(generated.generated, true)
  t.match(generated.cert, /^-----BEGIN CERTIFICATE-----/)
  const dir = await tempDir(t)
  await writeFile(join(dir, 'cert.pem'), generated.cert)
  await writeFile(join(dir, 'key.pem'), generated.key)
  t.same(await loadCertificate(join(dir, 'cert.pem'), join(dir, 'key.pem')), { ...generated, generated: false })
  await t.rejects(loadCertificate(join(dir, 'cert.pem')), /give both CERT_FILE and KEY_FILE/)
  await t.rejects(loadCertificate(undefined, join(dir, 'key.pem')), /give both CERT_FILE and KEY_FILE/)
})

t.test('the hand-off files carry the CA and secret to the client, and are removed', async (t) => {
  const dir = await tempDir(t)
  const config = readConfig({ EXAMPLE_DIR: dir })
  const remove = await writeHandoff(config, { caPem: 'CA', secret: 'S' })
  t.same(await readHandoff(config), { ca: 'CA', secret: 'S' })
  t.same(await readHandoff(readConfig({ EXAMPLE_DIR: dir, JWT_SECRET: 'from-env' })), { ca: 'CA', secret: 'from-env' }, 'JWT_SECRET wins')
  await remove()
  t.notOk(existsSync(join(dir, 'ca.pem')) || existsSync(join(dir, 'jwt-secret')))
  await (await writeHandoff(config, {}))() // nothing to write, nothing to remove
  await t.rejects(readHandoff(config), { code: 'ENOENT' }, 'no gateway running: the client cannot start')
})

t.test('the pieces run by hand: backends, gateway and client with its ID argument', async (t) => {
  const dir = await tempDir(t)
  let output = ''
  const write = (text: string): void => { output += text }
  const backends = await backendsMain({ ...RANDOM_PORTS }, write)
  t.teardown(backends.close)
  const env: NodeJS.ProcessEnv = { GATEWAY_PORT: '0', EXAMPLE_DIR: dir, LOG_LEVEL: 'silent' }
  for (const s of backends.servers) env[`BACKEND_${s.id.slice(8)}_PORT`] = new URL(s.url).port
  const gateway = await gatewayMain(env, write)
  t.teardown(gateway.close)
  t.ok(existsSync(join(dir, 'ca.pem')) && existsSync(join(dir, 'jwt-secret')), 'the gateway left the client its files')
  const one = await clientMain(['Backend_PQR'], { ...env, GATEWAY_URL: gateway.url }, write)
  t.same(one.exchanges.map((e) => e.backendId), ['Backend_PQR'])
  t.same(repliesOf(one.exchanges[0].replies), expectedReplies('Backend_PQR'))
  const all = await clientMain([], { ...env, GATEWAY_URL: gateway.url }, write)
  t.same(all.exchanges.map((e) => e.backendId), BACKEND_IDS, 'no argument: every backend')
  t.match(output, /Backend_ABC listening on ws:\/\/127\.0\.0\.1:\d+/)
  t.match(output, /gateway listening on wss:\/\/localhost:\d+\/ws/)
  t.match(output, /demo page: https:\/\/localhost:\d+\//)
  await gateway.close()
  t.notOk(existsSync(join(dir, 'jwt-secret')), 'the secret is removed when the gateway stops')

  // With CERT_FILE/KEY_FILE and JWT_SECRET given, the gateway writes nothing.
  const tls = await sharedTls()
  await writeFile(join(dir, 'cert.pem'), tls.cert)
  await writeFile(join(dir, 'key.pem'), tls.key)
  const given = await gatewayMain({ ...env, CERT_FILE: join(dir, 'cert.pem'), KEY_FILE: join(dir, 'key.pem'), JWT_SECRET: 'given' }, write)
  t.teardown(given.close)
  t.notOk(existsSync(join(dir, 'ca.pem')) || existsSync(join(dir, 'jwt-secret')))
  const byEnv = await clientMain(['Backend_ABC'], { GATEWAY_URL: given.url, CA_FILE: join(dir, 'cert.pem'), JWT_SECRET: 'given' }, write)
  t.equal(byEnv.exchanges[0].closeCode, 1000)
})

/**
 * Runs a file of example/ as `npm start` does; resolves with its exit code and output. A child
 * that does not end by itself is killed (after 20 s, or at teardown) so that it cannot outlive the test.
 */
async function run (t: TestLike, file: string, env: NodeJS.ProcessEnv, onStdout?: (text: string, signal: () => void) => void): Promise<{ code: number | null, signal: string | null, stdout: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', join('example', file)], {
    timeout: 20_000,
    killSignal: 'SIGKILL',
    cwd: join(__dirname, '..'),
    // No coverage from the child: it compiles the files with tsx, and V8 coverage of one file
    // compiled two ways does not merge (tsx's helpers land on random lines). The lines only a CLI
    // runs carry c8 ignore; this test is what checks them.
    env: { ...process.env, _TAPJS_PROCESSINFO_COVERAGE_: '0', ...env },
    stdio: ['ignore', 'pipe', 'inherit']
  })
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  let stdout = ''
  child.stdout.setEncoding('utf8')
  child.stdout.on('data', (chunk: string) => {
    stdout += chunk
    onStdout?.(stdout, () => child.kill('SIGINT'))
  })
  return await new Promise((resolve) => {
    child.once('exit', (code, signal) => { resolve({ code, signal, stdout }) })
  })
}

t.test('npm start: the sample runs, prints its story and exits 0 by itself', async (t) => {
  const { code, stdout } = await run(t, 'index.ts', RANDOM_PORTS)
  t.equal(code, 0)
  t.match(stdout, /← text {3}"\[ABC\] echo: hello"/)
  t.match(stdout, /✗ token signed with another secret: 401/)
  t.match(stdout, /\ndone\n$/)
})

t.test('Ctrl-C stops a piece run by hand, which then cleans up and exits', async (t) => {
  const dir = await tempDir(t)
  let sent = false
  const gateway = await run(t, 'gateway.ts', { ...RANDOM_PORTS, EXAMPLE_DIR: dir, LOG_LEVEL: 'silent' }, (out, sigint) => {
    if (!sent && out.includes('for the client')) { sent = true; sigint() }
  })
  t.equal(gateway.code, 130)
  t.match(gateway.stdout, /SIGINT: stopping…/)
  t.notOk(existsSync(join(dir, 'jwt-secret')), 'the hand-off files are gone')
  sent = false
  const backends = await run(t, 'backends.ts', RANDOM_PORTS, (out, sigint) => {
    if (!sent && out.includes('Backend_XYZ listening')) { sent = true; sigint() }
  })
  t.equal(backends.code, 130)
})
