import { generateKeyPairSync } from 'node:crypto'
import t from 'tap'
import Fastify from 'fastify'
import fastifyJwt from '@fastify/jwt'
import wsGateway from '../lib/index'
import { authenticate } from '../lib/handshake/auth/token'
import { BACKEND_ID, SECRET, connect, handshake, sign, startBackend, startGateway, startPair } from './helpers'

const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 })
const rsaPublicPem = rsa.publicKey.export({ type: 'spki', format: 'pem' }).toString()

t.test('refuses a missing or non-Bearer Authorization with 401 and WWW-Authenticate: Bearer', async (t) => {
  const { gateway } = await startPair(t)
  for (const authorization of [undefined, 'Basic dXNlcjpwYXNz', 'Bearer', `Bearer ${sign()} extra`]) {
    const headers: Record<string, string> = { id: BACKEND_ID }
    if (authorization !== undefined) headers.authorization = authorization
    const res = await handshake(gateway.port, headers)
    t.equal(res.status, 401, String(authorization))
    t.equal(res.body.code, 'FST_WS_GATEWAY_NO_TOKEN')
    t.equal(res.headers['www-authenticate'], 'Bearer')
  }
})

t.test('refuses a token in a header other than Authorization', async (t) => {
  const { gateway } = await startPair(t)
  const res = await handshake(gateway.port, { id: BACKEND_ID, 'x-token': `Bearer ${sign()}` })
  t.equal(res.status, 401)
})

t.test('refuses bad tokens with 401 and a category, never the library text', async (t) => {
  const { gateway } = await startPair(t, { jwt: { secret: SECRET, verify: { allowedAud: 'gateway', allowedIss: 'issuer' } } })
  const good = { aud: 'gateway', iss: 'issuer' }
  const now = Math.floor(Date.now() / 1000)
  const cases: Array<[string, string, string]> = [
    ['malformed', 'not.a.jwt', 'FST_WS_GATEWAY_INVALID_TOKEN'],
    ['bad signature', sign(good, { key: 'another-secret' }), 'FST_WS_GATEWAY_INVALID_TOKEN'],
    ['alg none', sign(good, { alg: 'none' }), 'FST_WS_GATEWAY_INVALID_TOKEN'],
    ['HS512 when HS256 is pinned', sign(good, { alg: 'HS512' }), 'FST_WS_GATEWAY_INVALID_TOKEN'],
    ['expired', sign(good, { expiresIn: -60 }), 'FST_WS_GATEWAY_TOKEN_EXPIRED'],
    ['not yet valid', sign({ ...good, nbf: now + 60 }), 'FST_WS_GATEWAY_INVALID_TOKEN'],
    ['no exp', sign(good, { expiresIn: null }), 'FST_WS_GATEWAY_INVALID_TOKEN'],
    ['wrong aud', sign({ ...good, aud: 'other' }), 'FST_WS_GATEWAY_INVALID_TOKEN'],
    ['wrong iss', sign({ ...good, iss: 'other' }), 'FST_WS_GATEWAY_INVALID_TOKEN']
  ]
  for (const [name, token, code] of cases) {
    const res = await handshake(gateway.port, { id: BACKEND_ID, authorization: `Bearer ${token}` })
    t.equal(res.status, 401, name)
    t.equal(res.body.code, code, name)
    t.equal(res.headers['www-authenticate'], 'Bearer', name)
    t.notMatch(String(res.body.message), /fast-jwt|FAST_JWT/i, name)
  }
  const ok = await handshake(gateway.port, { id: BACKEND_ID, authorization: `Bearer ${sign(good)}` })
  t.equal(ok.status, 101)
  t.equal(ok.headers['www-authenticate'], undefined, 'no challenge on success')
  ok.socket?.destroy()
})

t.test('tolerates a few seconds of clock skew on exp and nbf', async (t) => {
  const { gateway } = await startPair(t, { clockTolerance: 30 })
  const now = Math.floor(Date.now() / 1000)
  const ws = await connect(gateway.url, { id: BACKEND_ID, authorization: `Bearer ${sign({ nbf: now + 10 }, { expiresIn: -10 })}` })
  ws.close()
})

t.test('RS256 key pair: pinned to the RSA family, key confusion refused', async (t) => {
  const backend = await startBackend(t)
  const gateway = await startGateway(t, {
    backends: { [BACKEND_ID]: backend.url },
    jwt: { secret: { public: rsaPublicPem } },
    heartbeatInterval: 0
  })
  const ws = await connect(gateway.url, { id: BACKEND_ID, authorization: `Bearer ${sign({}, { alg: 'RS256', key: rsa.privateKey })}` })
  ws.close()
  // The classic confusion: an HS256 token "signed" with the public key as the HMAC secret.
  const confused = sign({}, { alg: 'HS256', key: rsaPublicPem })
  const res = await handshake(gateway.port, { id: BACKEND_ID, authorization: `Bearer ${confused}` })
  t.equal(res.status, 401)
  t.equal(res.body.code, 'FST_WS_GATEWAY_INVALID_TOKEN')
})

t.test('pins ES256 for a P-256 key and EdDSA for an Ed25519 key', async (t) => {
  const backend = await startBackend(t)
  for (const [type, options, alg] of [['ec', { namedCurve: 'P-256' }, 'ES256'], ['ed25519', {}, 'EdDSA']] as const) {
    const pair = generateKeyPairSync(type as 'ec', options as { namedCurve: string })
    const gateway = await startGateway(t, { backends: { [BACKEND_ID]: backend.url }, jwt: { secret: { public: pair.publicKey.export({ type: 'spki', format: 'pem' }) } } })
    const res = await handshake(gateway.port, { id: BACKEND_ID, authorization: `Bearer ${sign({}, { alg: 'HS256', key: SECRET })}` })
    t.equal(res.status, 401, `${alg}: HS256 refused`)
    t.equal(res.body.message, 'Invalid token: algorithm not allowed')
  }
})

t.test('reuses the app\'s own @fastify/jwt when no jwt option is given', async (t) => {
  const backend = await startBackend(t)
  const gateway = await startGateway(t, { backends: { [BACKEND_ID]: backend.url } }, {}, async (app) => {
    await app.register(fastifyJwt, { secret: SECRET })
    app.get('/me', async (request) => { await request.jwtVerify(); return request.user })
  })
  const ws = await connect(gateway.url)
  ws.close()
  const me = await gateway.app.inject({ url: '/me', headers: { authorization: `Bearer ${sign()}` } })
  t.equal(me.json().sub, 'user-1', 'the app\'s own JWT routes still work')
  const res = await handshake(gateway.port, { id: BACKEND_ID, authorization: `Bearer ${sign({}, { expiresIn: null })}` })
  t.equal(res.status, 401, 'exp is still required')
})

t.test('a gateway with its own jwt settings beside the app\'s @fastify/jwt', async (t) => {
  const backend = await startBackend(t)
  const gateway = await startGateway(t, { backends: { [BACKEND_ID]: backend.url }, jwt: { secret: 'gateway-only-secret' } }, {}, async (app) => {
    await app.register(fastifyJwt, { secret: SECRET })
  })
  const res = await handshake(gateway.port, { id: BACKEND_ID, authorization: `Bearer ${sign()}` })
  t.equal(res.status, 401, 'the app\'s secret is not the gateway\'s')
  const ws = await connect(gateway.url, { id: BACKEND_ID, authorization: `Bearer ${sign({}, { key: 'gateway-only-secret' })}` })
  ws.close()
})

t.test('registration fails clearly for missing or unusable JWT settings', async (t) => {
  const cases: Array<[unknown, RegExp]> = [
    [undefined, /jwt is required unless the app registered @fastify\/jwt/],
    [{ secret: '' }, /jwt.secret must not be empty/],
    [{ secret: 42 }, /jwt.secret must be a string, a Buffer or a \{ public, private\? \} key pair/],
    [{ secret: { public: 'not a key' } }, /jwt.secret.public is not a valid public key/],
    [{ secret: { public: generateKeyPairSync('x25519').publicKey.export({ type: 'spki', format: 'pem' }) } }, /unsupported key type x25519/]
  ]
  for (const [jwt, message] of cases) {
    const app = Fastify()
    t.teardown(() => app.close())
    await t.rejects(async () => { await app.register(wsGateway, { backends: { A: 'ws://127.0.0.1:1' }, jwt: jwt as never }) }, { code: 'FST_WS_GATEWAY_INVALID_OPTION', message })
  }
})

t.test('a verifier failing in an unknown way is a 401 "verification failed"; a non-object payload is malformed', async (t) => {
  const request = { headers: {} } as unknown as Parameters<typeof authenticate>[0]
  // A synchronous verifier is answered synchronously, an asynchronous one (any thenable) with a promise.
  t.throws(() => authenticate(request, () => { throw new Error('boom') }, 'token'), { code: 'FST_WS_GATEWAY_INVALID_TOKEN', message: 'Invalid token: verification failed' })
  t.throws(() => authenticate(request, () => 'not claims', 'token'), { message: 'Invalid token: exp claim required' })
  await t.rejects(authenticate(request, async () => { throw new Error('boom') }, 'token') as Promise<unknown>, { code: 'FST_WS_GATEWAY_INVALID_TOKEN', message: 'Invalid token: verification failed' })
  await t.rejects(authenticate(request, () => ({ then: (resolve: (v: unknown) => void) => resolve('not claims') }), 'token') as Promise<unknown>, { message: 'Invalid token: exp claim required' })
  const { gateway } = await startPair(t)
  const header = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT' })).toString('base64url')
  const res = await handshake(gateway.port, { id: BACKEND_ID, authorization: `Bearer ${header}.${Buffer.from('123').toString('base64url')}.sig` })
  t.equal(res.status, 401)
  t.equal(res.body.message, 'Invalid token: malformed')
})
