import { once } from 'node:events'
import { generateKeyPairSync, randomBytes, type KeyPairKeyObjectResult } from 'node:crypto'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import Fastify from 'fastify'
import { createSigner } from 'fast-jwt'
import wsGateway, { type JwksOptions, type WsGatewayOptions } from '../lib/index'
import { BACKEND_ID, captureLogs, connect, handshake, sign, startBackend, startGateway, type TestLike } from './helpers'

/*
 * Issue 12 §4: keys from a JWKS by `kid` (get-jwks), cached, rotated, pinned to each key's
 * family — against a JWKS server on 127.0.0.1 that the tests rotate, break and stop.
 */

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
const rsaPss = generateKeyPairSync('rsa', { modulusLength: 2048 })
const ec = generateKeyPairSync('ec', { namedCurve: 'P-256' })
const ed = generateKeyPairSync('ed25519')
const k1 = generateKeyPairSync('ec', { namedCurve: 'secp256k1' })

/** The public JWK of a key pair, as an identity provider publishes it. */
function jwk (pair: KeyPairKeyObjectResult, kid: string, alg?: string): Record<string, unknown> {
  return { ...pair.publicKey.export({ format: 'jwk' }), kid, use: 'sig', ...(alg === undefined ? {} : { alg }) }
}

/** A token signed with a key pair, naming `kid` in its header. */
function signed (pair: KeyPairKeyObjectResult, algorithm: string, kid: string, claims: Record<string, unknown> = {}): string {
  const key = pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
  return createSigner({ key, algorithm: algorithm as never, kid, expiresIn: 60_000 })({ sub: 'user-1', ...claims })
}

interface JwksServer {
  url: string
  /** The keys it serves now; tests rotate them. */
  keys: Array<Record<string, unknown>>
  /** Requests it received. */
  requests: number
  /** `up`, `error` (500, not a JWKS) or `hang` (never answers). */
  mode: 'up' | 'error' | 'hang'
  stop: () => Promise<void>
}

/** A JWKS (and OpenID configuration) server on 127.0.0.1. */
async function startJwks (t: TestLike): Promise<JwksServer> {
  const server = http.createServer((req, res) => {
    jwks.requests++
    if (jwks.mode === 'hang') return
    if (jwks.mode === 'error') return res.writeHead(500, { 'content-type': 'text/html' }).end('<h1>oops</h1>')
    const body = req.url === '/.well-known/openid-configuration' ? { jwks_uri: `${jwks.url}/certs` } : { keys: jwks.keys }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(body))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const stop = async (): Promise<void> => {
    server.closeAllConnections()
    if (server.listening) await new Promise((resolve) => server.close(resolve))
  }
  const jwks: JwksServer = { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, keys: [], requests: 0, mode: 'up', stop }
  t.teardown(stop)
  return jwks
}

/** A gateway verifying tokens against `jwks`. */
async function startJwksGateway (t: TestLike, jwks: JwksOptions, options: Partial<WsGatewayOptions> = {}, logger?: object): Promise<{ port: number, url: string }> {
  const backend = await startBackend(t)
  return await startGateway(t, { backends: { [BACKEND_ID]: backend.url }, jwt: { jwks }, heartbeatInterval: 0, ...options }, logger === undefined ? {} : { logger })
}

async function answer (port: number, token: string): Promise<Awaited<ReturnType<typeof handshake>>> {
  const res = await handshake(port, { id: BACKEND_ID, authorization: `Bearer ${token}` })
  res.socket?.destroy()
  return res
}

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

t.test('keys by kid: cached, a rotated-in key fetched, a removed key refused once its cached copy expired', async (t) => {
  const jwks = await startJwks(t)
  jwks.keys = [jwk(rsa, 'k1', 'RS256')]
  const gateway = await startJwksGateway(t, { url: `${jwks.url}/certs`, ttl: 2000 })

  const ws = await connect(gateway.url, { id: BACKEND_ID, authorization: `Bearer ${signed(rsa, 'RS256', 'k1')}` })
  ws.close()
  t.equal((await answer(gateway.port, signed(rsa, 'RS256', 'k1'))).status, 101, 'again, from the cache')
  t.equal(jwks.requests, 1, 'one fetch for both')

  jwks.keys = [jwk(ec, 'k2')] // rotation: k1 removed, k2 added
  t.equal((await answer(gateway.port, signed(ec, 'ES256', 'k2'))).status, 101, 'the new kid is fetched and accepted')
  t.equal(jwks.requests, 2)
  t.equal((await answer(gateway.port, signed(rsa, 'RS256', 'k1'))).status, 101, 'the old key until its cached copy expires')

  await sleep(2100) // past the cache's ttl (long enough that a loaded machine does not expire it early)
  const removed = await answer(gateway.port, signed(rsa, 'RS256', 'k1'))
  t.equal(removed.status, 401, 'the removed key is refused')
  t.same([removed.body.code, removed.body.message], ['FST_WS_GATEWAY_INVALID_TOKEN', 'Invalid token: unknown key'])
  t.equal((await answer(gateway.port, signed(rsa, 'RS256', 'k1'))).status, 401, 'and stays refused')
  t.equal((await answer(gateway.port, signed(ec, 'ES256', 'k2'))).status, 101, 'the new key still works')
})

t.test('unknown kids: 401, and after one miss no fetch for never-seen kids during the cooldown', async (t) => {
  const jwks = await startJwks(t)
  jwks.keys = [jwk(rsa, 'k1'), jwk(ec, 'k2')]
  const gateway = await startJwksGateway(t, { url: `${jwks.url}/certs`, cooldown: 2000 })
  t.equal((await answer(gateway.port, signed(rsa, 'RS256', 'k1'))).status, 101)
  const unknown = await answer(gateway.port, signed(ec, 'ES256', 'never-published'))
  t.same([unknown.status, unknown.body.code, unknown.body.message], [401, 'FST_WS_GATEWAY_INVALID_TOKEN', 'Invalid token: unknown key'])
  t.equal(jwks.requests, 2, 'an unknown kid makes one fetch')
  for (let i = 0; i < 5; i++) t.equal((await answer(gateway.port, signed(ec, 'ES256', randomBytes(8).toString('hex')))).status, 401)
  t.equal(jwks.requests, 2, 'random kids within the cooldown make none')
  t.equal((await answer(gateway.port, signed(rsa, 'RS256', 'k1'))).status, 101, 'a cached key is unaffected')
  t.equal((await answer(gateway.port, signed(ec, 'ES256', 'k2'))).status, 401, 'a kid first seen during the cooldown waits for its end (the documented price)')
  await sleep(2100)
  t.equal((await answer(gateway.port, signed(ec, 'ES256', 'k2'))).status, 101, 'after the cooldown it is fetched')
  t.equal(jwks.requests, 3)
})

t.test('JWKS server down: cached keys keep working, others get 503 KEYS_UNAVAILABLE with Retry-After', async (t) => {
  const jwks = await startJwks(t)
  jwks.keys = [jwk(rsa, 'k1'), jwk(ec, 'k2')]
  const { logger, lines } = captureLogs()
  const gateway = await startJwksGateway(t, { url: `${jwks.url}/certs`, ttl: 100 }, {}, logger)
  t.equal((await answer(gateway.port, signed(rsa, 'RS256', 'k1'))).status, 101)

  await jwks.stop()
  await sleep(150) // k1's cached copy expired; a refresh now fails
  t.equal((await answer(gateway.port, signed(rsa, 'RS256', 'k1'))).status, 101, 'a key fetched before keeps working')
  t.equal((await answer(gateway.port, signed(rsa, 'RS256', 'k1'))).status, 101, 'again')
  const res = await answer(gateway.port, signed(ec, 'ES256', 'k2'))
  t.same([res.status, res.body.code, res.headers['retry-after']], [503, 'FST_WS_GATEWAY_KEYS_UNAVAILABLE', '5'])
  t.equal(res.headers['www-authenticate'], undefined, 'not a challenge: the client did nothing wrong')
  t.notMatch(JSON.stringify(res.body), /ECONNREFUSED|fetch failed|127\.0\.0\.1/)
  t.ok(lines.some((line) => line.msg === 'ws gateway could not fetch the token signing keys' && line.level === 40), 'logged at warn')
})

t.test('a JWKS that answers an error page or hangs: 503 within the timeout', async (t) => {
  const jwks = await startJwks(t)
  const gateway = await startJwksGateway(t, { url: `${jwks.url}/certs`, timeout: 300, cooldown: 0 }, { retryAfter: 2 })
  jwks.mode = 'error'
  const broken = await answer(gateway.port, signed(rsa, 'RS256', 'k1'))
  t.same([broken.status, broken.body.code, broken.headers['retry-after']], [503, 'FST_WS_GATEWAY_KEYS_UNAVAILABLE', '2'])
  jwks.mode = 'hang'
  const hung = await answer(gateway.port, signed(rsa, 'RS256', 'k3'))
  t.same([hung.status, hung.body.code], [503, 'FST_WS_GATEWAY_KEYS_UNAVAILABLE'], 'a hanging JWKS is 503 once timeout passed')
})

t.test('algorithms stay pinned to each key: never none, never HS, never another family', async (t) => {
  const jwks = await startJwks(t)
  const secret = randomBytes(32)
  jwks.keys = [
    jwk(rsa, 'rsa'), jwk(rsaPss, 'pss', 'PS256'), jwk(ec, 'ec'), jwk(ec, 'ec-declared', 'ES256'), jwk(ed, 'ed'), jwk(k1, 'secp256k1'),
    { kty: 'oct', k: secret.toString('base64url'), kid: 'oct' }
  ]
  const gateway = await startJwksGateway(t, { url: `${jwks.url}/certs` }, { jwt: { jwks: { url: `${jwks.url}/certs` }, verify: { allowedAud: 'gateway' } } })
  const aud = { aud: 'gateway' }
  for (const [name, token] of [
    ['RS256', signed(rsa, 'RS256', 'rsa', aud)],
    ['PS256 on a key declared PS256', signed(rsaPss, 'PS256', 'pss', aud)],
    ['ES256', signed(ec, 'ES256', 'ec', aud)],
    ['ES256 on a key declared ES256', signed(ec, 'ES256', 'ec-declared', aud)],
    ['EdDSA', signed(ed, 'EdDSA', 'ed', aud)]
  ]) t.equal((await answer(gateway.port, token)).status, 101, name)

  const rsaPem = rsa.publicKey.export({ type: 'spki', format: 'pem' }).toString()
  const refusals: Array<[string, string, string]> = [
    ['alg none', sign(aud, { alg: 'none' }), 'algorithm not allowed'],
    ['HS256 with the RSA public key as secret', createSigner({ key: rsaPem, algorithm: 'HS256', kid: 'rsa' })(aud), 'algorithm not allowed'],
    ['HS256 against a symmetric key in the set', createSigner({ key: secret, algorithm: 'HS256', kid: 'oct' })(aud), 'algorithm not allowed'],
    ['RS256 naming a symmetric key', signed(rsa, 'RS256', 'oct', aud), 'algorithm not allowed'],
    ['RS256 naming the EC key', signed(rsa, 'RS256', 'ec', aud), 'algorithm not allowed'],
    ['a key of a curve no JWT algorithm here uses (secp256k1)', signed(ec, 'ES256', 'secp256k1', aud), 'algorithm not allowed'],
    ['PS256 on an RSA key without a declared alg', signed(rsa, 'PS256', 'rsa', aud), 'algorithm not allowed'],
    ['RS256 on a key declared PS256', signed(rsaPss, 'RS256', 'pss', aud), 'unknown key'],
    ['wrong audience', signed(rsa, 'RS256', 'rsa', { aud: 'other' }), 'claims rejected'],
    ['not a JWT', 'not.a.jwt', 'malformed']
  ]
  for (const [name, token, category] of refusals) {
    const res = await answer(gateway.port, token)
    t.same([res.status, res.body.message], [401, `Invalid token: ${category}`], name)
  }
  const expired = createSigner({ key: rsa.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString(), algorithm: 'RS256', kid: 'rsa' })({ ...aud, exp: Math.floor(Date.now() / 1000) - 60 })
  t.equal((await answer(gateway.port, expired)).body.code, 'FST_WS_GATEWAY_TOKEN_EXPIRED')

  const esOnly = await startJwksGateway(t, { url: `${jwks.url}/certs` }, { jwt: { jwks: { url: `${jwks.url}/certs` }, verify: { algorithms: ['ES256'] } } })
  t.equal((await answer(esOnly.port, signed(rsa, 'RS256', 'rsa'))).body.message, 'Invalid token: algorithm not allowed', 'verify.algorithms narrows further')
  t.equal((await answer(esOnly.port, signed(ec, 'ES256', 'ec'))).status, 101)
})

t.test('issuers: keys from the token\'s iss (with OpenID discovery); an iss not listed is refused before any fetch', async (t) => {
  const jwks = await startJwks(t)
  jwks.keys = [jwk(ec, 'k1')]
  const discovered = await startJwksGateway(t, { issuers: [jwks.url], providerDiscovery: true })
  t.equal((await answer(discovered.port, signed(ec, 'ES256', 'k1', { iss: jwks.url }))).status, 101)
  t.equal(jwks.requests, 2, 'the OpenID configuration, then the JWKS it names')
  const wellKnown = await startJwksGateway(t, { issuers: [`${jwks.url}/`] })
  t.equal((await answer(wellKnown.port, signed(ec, 'ES256', 'k1', { iss: `${jwks.url}/` }))).status, 101, '<iss>/.well-known/jwks.json')
  const before = jwks.requests
  for (const iss of ['http://127.0.0.1:1', undefined]) {
    const res = await answer(wellKnown.port, signed(ec, 'ES256', 'k1', iss === undefined ? {} : { iss }))
    t.same([res.status, res.body.message], [401, 'Invalid token: claims rejected'], String(iss))
  }
  t.equal(jwks.requests, before, 'nothing fetched for an unlisted issuer')
})

t.test('jwt.jwks is validated at registration', async (t) => {
  const https = 'https://idp.example/jwks.json'
  const cases: Array<[unknown, RegExp]> = [
    [{ jwks: 'x' }, /jwt.jwks must be an object/],
    [{ jwks: {} }, /jwt.jwks needs either url or issuers/],
    [{ jwks: { url: https, issuers: [https] } }, /jwt.jwks needs either url or issuers/],
    [{ jwks: { url: https }, secret: 's' }, /jwt.secret is not used with jwt.jwks/],
    [{ jwks: { url: https, maxAge: 1 } }, /unknown option "jwt.jwks.maxAge"/],
    [{ jwks: { url: 'not a url' } }, /jwt.jwks.url must be an https: URL/],
    [{ jwks: { url: 'http://idp.example/jwks.json' } }, /jwt.jwks.url must be an https: URL \(http: only on a loopback host\)/],
    [{ jwks: { url: 'https://idp.example/' } }, /jwt.jwks.url must name the JWKS document/],
    [{ jwks: { issuers: [] } }, /jwt.jwks.issuers must be a non-empty array/],
    [{ jwks: { issuers: 'https://idp.example' } }, /jwt.jwks.issuers must be a non-empty array/],
    [{ jwks: { issuers: ['ftp://idp.example'] } }, /jwt.jwks.issuers\[0\] must be an https: URL/],
    [{ jwks: { issuers: [https], providerDiscovery: 'yes' } }, /jwt.jwks.providerDiscovery must be a boolean/],
    [{ jwks: { url: https, providerDiscovery: true } }, /providerDiscovery applies to issuers, not to url/],
    [{ jwks: { url: https, ttl: 0 } }, /jwt.jwks.ttl must be an integer >= 1/],
    [{ jwks: { url: https, cooldown: -1 } }, /jwt.jwks.cooldown must be an integer >= 0/],
    [{ jwks: { url: https }, verify: 1 }, /jwt.verify must be an object/],
    [{ jwks: { url: https }, verify: { algorithms: ['HS256'] } }, /jwt.verify.algorithms must list some of RS256/],
    [{ jwks: { url: https }, verify: { algorithms: [] } }, /jwt.verify.algorithms must list some of/],
    [{ jwks: { url: https }, verify: { clockTolerance: -1 } }, /jwt.verify: .*clockTolerance/]
  ]
  for (const [jwt, message] of cases) {
    const app = Fastify()
    t.teardown(() => app.close())
    await t.rejects(async () => { await app.register(wsGateway, { backends: { A: 'ws://127.0.0.1:1' }, jwt: jwt as never }) },
      { code: 'FST_WS_GATEWAY_INVALID_OPTION', message }, String(message))
  }
  for (const url of ['http://localhost:1/jwks', 'http://127.0.0.1:1/jwks', 'http://[::1]:1/jwks', https]) {
    const app = Fastify()
    t.teardown(() => app.close())
    await t.resolves(async () => { await app.register(wsGateway, { backends: { A: 'ws://127.0.0.1:1' }, jwt: { jwks: { url } } }) }, url)
  }
})
