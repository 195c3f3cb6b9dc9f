import t from 'tap'
import Fastify from 'fastify'
import wsGateway from '../lib/index'
import { validateOptions } from '../lib/options/validate'
import { DEFAULT_MAX_PAYLOAD, DEFAULT_HEARTBEAT_INTERVAL, DEFAULT_CONNECT_TIMEOUT } from '../lib/options/defaults'
import type { BackendOption, WsGatewayOptions } from '../lib/options/types'
import { isSendable, truncateReason } from '../lib/relay/close-codes'
import { BACKEND_ID, SECRET, authHeaders, captureLogs, connect, handshake, nextMessage, sign, startBackend, startGateway, startPair, type LogLine } from './helpers'

const valid = { backends: { A: 'ws://127.0.0.1:1' }, jwt: { secret: 's' } }

t.test('defaults are filled in, the input is left alone and the result is frozen', async (t) => {
  const input = { ...valid, backends: { A: { url: 'wss://h:1/p', headers: { x: 'y' }, rejectUnauthorized: false } } }
  const snapshot = JSON.stringify(input)
  const opts = validateOptions(input)
  t.equal(JSON.stringify(input), snapshot)
  t.ok(Object.isFrozen(opts))
  t.equal(opts.path, '/ws')
  t.equal(opts.idHeader, 'id')
  t.equal(opts.maxPayload, DEFAULT_MAX_PAYLOAD)
  t.equal(opts.heartbeatInterval, DEFAULT_HEARTBEAT_INTERVAL)
  t.equal(opts.connectTimeout, DEFAULT_CONNECT_TIMEOUT)
  t.equal(opts.idleTimeout, 0)
  const backend = opts.backends.get('A')
  t.same(backend?.source, { kind: 'static', urls: [new URL('wss://h:1/p')] })
  t.same(backend?.tls, { rejectUnauthorized: false })
  t.equal(backend?.maxPayload, DEFAULT_MAX_PAYLOAD, 'a backend inherits the gateway maxPayload')
  t.equal(backend?.perMessageDeflate, false)
  t.same(opts.rateLimit, { messagesPerSecond: 10000, bytesPerSecond: 64 * 1024 * 1024, onExceeded: 'close' })
  t.equal(validateOptions({ ...valid, rateLimit: false }).rateLimit, false)
  t.equal(opts.maxConnectionsPerIp, 0, 'per-IP limit off by default')
})

t.test('every bad option is refused with a message naming it', async (t) => {
  const cases: Array<[unknown, RegExp]> = [
    ['nope', /options must be an object/],
    [{ ...valid, typo: 1 }, /unknown option "typo"/],
    [{ ...valid, path: 'ws' }, /path must be a string starting with "\/"/],
    [{ ...valid, idHeader: 'bad header' }, /idHeader must be a valid HTTP header name/],
    [{ ...valid, maxPayload: 0 }, /maxPayload must be an integer >= 1/],
    [{ ...valid, heartbeatInterval: -1 }, /heartbeatInterval must be 0 \(off\) or an integer from 1000 to 2147483647 \(ms\)/],
    [{ ...valid, connectTimeout: 1.5 }, /connectTimeout must be an integer from 100 to 2147483647 \(ms\)/],
    [{ ...valid, idleTimeout: '5' }, /idleTimeout must be 0 \(off\) or an integer from 1000/],
    [{ ...valid, highWaterMark: 0 }, /highWaterMark must be an integer >= 1/],
    [{ ...valid, closeTimeout: -5 }, /closeTimeout must be an integer from 100/],
    [{ ...valid, clockTolerance: 'x' }, /clockTolerance must be an integer >= 0/],
    [{ jwt: { secret: 's' } }, /give backends, resolveBackend or both \(or messages, for message mode; or cluster, for backends that announce themselves\)/],
    [{ ...valid, backends: [] }, /backends must be an object mapping IDs to backends/],
    [{ ...valid, backends: { 'bad id': 'ws://h' } }, /backends\["bad id"\]: IDs must match/],
    [{ ...valid, backends: { A: 42 } }, /backends\["A"\] must be a URL string or an object with a url/],
    [{ ...valid, backends: { A: 'not a url' } }, /backends\["A"\].url must be a ws: or wss: URL/],
    [{ ...valid, backends: { A: 'http://h' } }, /backends\["A"\].url must be a ws: or wss: URL/],
    [{ ...valid, backends: { A: 'ws://h/#x' } }, /backends\["A"\].url must not have a #fragment/],
    [{ ...valid, backends: { A: { url: 'ws://h', headers: { x: 1 } } } }, /backends\["A"\].headers\["x"\] must be a string$/],
    [{ ...valid, backends: { A: { url: 'ws://h', headers: [] } } }, /backends\["A"\].headers must be an object of header names to strings/],
    [{ ...valid, backends: { A: { url: 'ws://h', perMessageDeflate: 'yes' } } }, /backends\["A"\].perMessageDeflate must be a boolean or an object/],
    [{ ...valid, backends: { A: { url: 'ws://h', maxPayload: 0 } } }, /backends\["A"\].maxPayload must be an integer >= 1/],
    [{ ...valid, resolveBackend: 'x' }, /resolveBackend must be a function/],
    [{ ...valid, authorize: {} }, /authorize must be a function/],
    [{ ...valid, rewriteRequestHeaders: 1 }, /rewriteRequestHeaders must be a function/],
    [{ ...valid, allowedOrigins: 'https://a' }, /allowedOrigins must be an array of origins or a function/],
    [{ ...valid, jwt: 'secret' }, /jwt must be an object: \{ secret, verify\? \} or \{ jwks, verify\? \}/],
    [{ ...valid, shutdownCloseCode: 1000 }, /shutdownCloseCode must be one of 1001, 1012/],
    [{ ...valid, slowConsumerCloseCode: 1011 }, /slowConsumerCloseCode must be one of 1008, 1013/],
    [{ ...valid, rateLimit: true }, /rateLimit must be an object or false/],
    [{ ...valid, rateLimit: { messages: 1 } }, /unknown option "rateLimit.messages"/],
    [{ ...valid, rateLimit: { bytesPerSecond: 0 } }, /rateLimit.bytesPerSecond must be an integer >= 1/],
    [{ ...valid, rateLimit: { onExceeded: 'ignore' } }, /onExceeded must be one of close, drop/],
    [{ ...valid, engine: 'fast' }, /engine must be "passthrough" or "ws"/],
    [{ ...valid, closeOnTokenExpiry: 'yes' }, /closeOnTokenExpiry must be a boolean/],
    [{ ...valid, maxConnections: -1 }, /maxConnections must be an integer >= 0/]
  ]
  for (const [options, message] of cases) {
    t.throws(() => validateOptions(options as WsGatewayOptions), { code: 'FST_WS_GATEWAY_INVALID_OPTION', message }, String(message))
  }
})

t.test('registration fails fast on a bad option', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await t.rejects(async () => { await app.register(wsGateway, { ...valid, maxPayload: -1 }) }, { code: 'FST_WS_GATEWAY_INVALID_OPTION' })
})

t.test('close codes: sendable ones, and reasons cut on a UTF-8 boundary', async (t) => {
  for (const code of [1000, 1003, 1007, 1014, 3000, 4999]) t.ok(isSendable(code), String(code))
  for (const code of [999, 1004, 1005, 1006, 1015, 2999, 5000]) t.notOk(isSendable(code), String(code))
  t.equal(truncateReason('short').toString(), 'short')
  const euro = '€'.repeat(50) // 150 bytes, 3 per character
  const cut = truncateReason(euro)
  t.equal(cut.length, 123)
  t.equal(cut.toString(), '€'.repeat(41))
  const mixed = 'a' + '€'.repeat(50) // the 123-byte cut lands inside a character
  t.equal(truncateReason(mixed).toString(), 'a' + '€'.repeat(40))
  t.equal(truncateReason(Buffer.from('x'.repeat(200))).length, 123)
})

/** What `validateOptions` says about `options` (on top of a valid base), or 'ok'. */
function verdict (options: Record<string, unknown>): string {
  try {
    validateOptions({ ...valid, ...options } as WsGatewayOptions)
    return 'ok'
  } catch (err) {
    return (err as Error).message.replace('Invalid fastify-ws-gateway option: ', '')
  }
}

t.test('a backend config takes only the keys it knows, with typed TLS settings', async (t) => {
  const backend = (config: Record<string, unknown>): Record<string, unknown> => ({ backends: { A: { url: 'ws://h', ...config } } })
  t.equal(verdict(backend({ header: { 'x-api-key': 'k' } })), 'unknown option "backends["A"].header"', 'a typo is not passed to ws')
  t.equal(verdict(backend({ followRedirects: true })), 'unknown option "backends["A"].followRedirects"')
  t.equal(verdict(backend({ rejectUnauthorized: 'false' })), 'backends["A"].rejectUnauthorized must be a boolean')
  t.equal(verdict(backend({ ca: 42 })), 'backends["A"].ca must be a string, a Buffer or an array of them')
  t.equal(verdict(backend({ servername: 1 })), 'backends["A"].servername must be a string')
  t.equal(verdict(backend({ passphrase: Buffer.from('x') })), 'backends["A"].passphrase must be a string')
  t.equal(verdict(backend({ checkServerIdentity: true })), 'backends["A"].checkServerIdentity must be a function')
  t.equal(verdict(backend({ ca: ['pem', Buffer.from('der')], key: [{ pem: 'k', passphrase: 'p' }], rejectUnauthorized: false, servername: 'h', checkServerIdentity: () => undefined })), 'ok')
})

t.test('backend headers must be sendable: names are HTTP tokens, values have no control characters', async (t) => {
  const headers = (h: unknown): Record<string, unknown> => ({ backends: { A: { url: 'ws://h', headers: h } } })
  t.equal(verdict(headers({ 'bad header': 'x' })), 'backends["A"].headers["bad header"] is not a valid header name')
  t.equal(verdict(headers({ '': 'x' })), 'backends["A"].headers[""] is not a valid header name')
  t.equal(verdict(headers({ 'x-a': 'line\nbreak' })), 'backends["A"].headers["x-a"] has a character not allowed in a header value')
  t.equal(verdict(headers({ 'x-a': ['list'] })), 'backends["A"].headers["x-a"] must be a string')
  t.equal(verdict(headers({ 'x-api-key': 'k', Accept: 'text/plain' })), 'ok')
})

t.test('what resolveBackend returns is checked the same way: unknown keys and bad headers are a logged 502', async (t) => {
  const backend = await startBackend(t)
  const { lines, logger } = captureLogs()
  const gateway = await startGateway(t, {
    jwt: { secret: SECRET },
    resolveBackend: (id) => ({
      Typo: { url: backend.url, header: { 'x-api-key': 'k' } },
      BadHeader: { url: backend.url, headers: { 'bad header': 'x' } },
      BadValue: { url: backend.url, headers: { 'x-a': 'a\r\nb' } },
      Good: { url: backend.url, headers: { 'x-api-key': 'k' } }
    } as Record<string, BackendOption>)[id]
  }, { logger })
  for (const [i, [id, problem]] of [
    ['Typo', 'unknown option "resolveBackend("Typo").header"'],
    ['BadHeader', 'resolveBackend("BadHeader").headers["bad header"] is not a valid header name'],
    ['BadValue', 'resolveBackend("BadValue").headers["x-a"] has a character not allowed in a header value']
  ].entries()) {
    const res = await handshake(gateway.port, authHeaders({ id }))
    t.equal(res.status, 502, id)
    t.equal(res.body.code, 'FST_WS_GATEWAY_BAD_GATEWAY')
    t.equal(res.body.message, 'The backend could not be reached', 'no library or option text reaches the client')
    const logged = lines.filter((l) => l.msg === 'ws gateway resolveBackend failed')[i]
    t.match((logged.err as { message: string }).message, problem, 'the log names the option at fault')
  }
  t.equal(backend.requests.length, 0, 'the backend is never contacted')
  const ws = await connect(gateway.url, authHeaders({ id: 'Good' }))
  t.equal(backend.requests[0].headers['x-api-key'], 'k')
  ws.close()
})

t.test('rewriteRequestHeaders: headers Node cannot send are a logged 500 CALLBACK_FAILED that names the header at fault', async (t) => {
  const backend = await startBackend(t)
  const { lines, logger } = captureLogs()
  const rewrites: Record<string, (headers: Record<string, string | string[]>) => unknown> = {
    'bad-name': (headers) => ({ ...headers, 'bad header': 'x' }),
    'bad-value': (headers) => ({ ...headers, 'x-a': 'a\nb' }),
    'not-string': (headers) => ({ ...headers, 'x-a': 42 }),
    'not-object': () => 'headers',
    throws: () => { throw new Error('secret-internal-detail') },
    list: (headers) => ({ ...headers, 'x-list': ['a', 'b'] })
  }
  const gateway = await startGateway(t, {
    backends: { [BACKEND_ID]: backend.url },
    jwt: { secret: SECRET },
    rewriteRequestHeaders: (request, headers) => rewrites[request.headers['x-case'] as string](headers) as Record<string, string>
  }, { logger })
  for (const name of ['bad-name', 'bad-value', 'not-string', 'not-object', 'throws']) {
    const res = await handshake(gateway.port, authHeaders({ 'x-case': name }))
    t.equal(res.status, 500, name)
    t.same(res.body, { statusCode: 500, code: 'FST_WS_GATEWAY_CALLBACK_FAILED', error: 'Internal Server Error', message: 'An application callback failed' })
  }
  const logged = lines.filter((l) => l.msg === 'ws gateway rewriteRequestHeaders failed')
  t.same(logged.map((l) => [l.level, l.callback, (l.err as { message: string }).message]), [
    [50, 'rewriteRequestHeaders', 'headers["bad header"] is not a valid header name'],
    [50, 'rewriteRequestHeaders', 'headers["x-a"] has a character not allowed in a header value'],
    [50, 'rewriteRequestHeaders', 'headers["x-a"] must be a string or an array of strings'],
    [50, 'rewriteRequestHeaders', 'headers must be an object of header names to strings'],
    [50, 'rewriteRequestHeaders', 'secret-internal-detail']
  ], 'logged at error, naming the header at fault')
  t.equal(backend.requests.length, 0)
  const ws = await connect(gateway.url, authHeaders({ 'x-case': 'list' }))
  t.equal(backend.requests[0].headers['x-list'], 'a, b', 'a list of values is sent as one header')
  ws.close()
})

t.test('allowedOrigins: each entry must be a serialized origin that a browser could send', async (t) => {
  const form = 'must be an origin like "https://app.example" (scheme://host[:port], no path or trailing slash)'
  t.equal(verdict({ allowedOrigins: ['*'] }), `allowedOrigins[0] ${form}`)
  t.equal(verdict({ allowedOrigins: ['https://ok.example', 'https://a/'] }), `allowedOrigins[1] ${form}: write "https://a"`)
  t.equal(verdict({ allowedOrigins: ['app.example'] }), `allowedOrigins[0] ${form}`)
  t.equal(verdict({ allowedOrigins: ['localhost:3000'] }), `allowedOrigins[0] ${form}`)
  t.equal(verdict({ allowedOrigins: ['null'] }), `allowedOrigins[0] ${form}`)
  t.equal(verdict({ allowedOrigins: [42] }), `allowedOrigins[0] ${form}`)
  t.equal(verdict({ allowedOrigins: ['https://user:pw@a.example'] }), `allowedOrigins[0] ${form}`)
  t.equal(verdict({ allowedOrigins: ['https://a.example:443'] }), `allowedOrigins[0] ${form}: write "https://a.example"`, 'browsers leave a default port out')
  t.equal(verdict({ allowedOrigins: ['https://a.example/path?q'] }), `allowedOrigins[0] ${form}: write "https://a.example"`)
  t.equal(verdict({ allowedOrigins: ['https://bücher.example'] }), `allowedOrigins[0] ${form}: write "https://xn--bcher-kva.example"`)
  t.equal(verdict({ allowedOrigins: ['HTTPS://App.Example:8443', 'http://[::1]:3000', 'chrome-extension://abcdef'] }), 'ok')
  const { gateway } = await startPair(t, { allowedOrigins: ['HTTPS://App.Example:8443'] })
  const ws = await connect(gateway.url, authHeaders({ origin: 'https://app.example:8443' }))
  ws.close()
  t.equal((await handshake(gateway.port, authHeaders({ origin: 'https://app.example' }))).status, 403)
})

t.test('jwt: verify options are checked, "none" is never accepted, and fast-jwt\'s own refusals are INVALID_OPTION naming jwt', async (t) => {
  const jwt = (j: unknown): Record<string, unknown> => ({ jwt: j })
  t.equal(verdict(jwt({ secret: 's', verify: { algorithms: ['none'] } })), 'jwt.verify.algorithms must not include "none": unsigned tokens are never accepted')
  t.equal(verdict(jwt({ secret: 's', verify: { algorithms: ['HS256', 'none'] } })), 'jwt.verify.algorithms must not include "none": unsigned tokens are never accepted')
  t.equal(verdict(jwt({ secret: 's', verify: { algorithms: ['HS256', 'RS256'] } })), 'jwt.verify.algorithms: "RS256" cannot be verified with a shared secret (it allows HS256, HS384, HS512)')
  t.equal(verdict(jwt({ secret: 's', verify: { algorithms: [] } })), 'jwt.verify.algorithms must be a non-empty array of algorithm names')
  t.equal(verdict(jwt({ secret: 's', verify: { algorithms: 'HS256' } })), 'jwt.verify.algorithms must be a non-empty array of algorithm names')
  t.equal(verdict(jwt({ secret: 's', verify: 'strict' })), 'jwt.verify must be an object of verify options')
  t.equal(verdict(jwt({ secret: 's', sign: { expiresIn: 60 } })), 'unknown option "jwt.sign"', '@fastify/jwt options the gateway never used are refused')
  t.equal(verdict(jwt({ secret: 's', verify: { allowedAudience: 'x' } })), 'unknown option "jwt.verify.allowedAudience"')
  t.equal(verdict(jwt({ secret: 's', verify: { clockTolerance: 30 } })), 'jwt.verify.clockTolerance is not supported: use the clockTolerance option (seconds)')
  t.equal(verdict(jwt({ secret: 's', verify: { ignoreExpiration: true } })), 'jwt.verify.ignoreExpiration is not supported: the gateway always checks exp')
  t.equal(verdict(jwt({ secret: 's', verify: { complete: true } })), 'jwt.verify.complete is not supported: the gateway reads the claims themselves')
  t.equal(verdict(jwt({ secret: 's', verify: { maxAge: '1h' } })), 'jwt.verify.maxAge must be a number of seconds > 0')
  t.equal(verdict(jwt({ secret: 's', verify: { requiredClaims: 'sub' } })), 'jwt.verify: The requiredClaims option must be an array.', 'fast-jwt\'s refusal, named')
  t.equal(verdict(jwt({ secret: { public: 'x', extra: 1 } })), 'unknown option "jwt.secret.extra"')
  t.equal(verdict(jwt({ secret: { public: 42 } })), 'jwt.secret.public is not a valid public key (PEM, as a string or a Buffer)')
  const app = Fastify()
  t.teardown(() => app.close())
  await t.rejects(async () => { await app.register(wsGateway, { ...valid, jwt: { secret: 's', verify: { algorithms: ['none'] } } }) },
    { code: 'FST_WS_GATEWAY_INVALID_OPTION', message: /jwt\.verify\.algorithms/ }, 'registration fails with the gateway\'s code, not fast-jwt\'s')
})

t.test('jwt.verify options reach the verifier: maxAge in seconds, allowedSub', async (t) => {
  const { gateway } = await startPair(t, { jwt: { secret: SECRET, verify: { maxAge: 60, allowedSub: 'user-1', algorithms: ['HS256', 'HS512'] } } })
  const ws = await connect(gateway.url, authHeaders({ authorization: `Bearer ${sign({}, { alg: 'HS512' })}` }))
  ws.close()
  const old = await handshake(gateway.port, authHeaders({ authorization: `Bearer ${sign({ iat: Math.floor(Date.now() / 1000) - 120 })}` }))
  t.equal(old.status, 401, 'older than maxAge')
  const other = await handshake(gateway.port, authHeaders({ authorization: `Bearer ${sign({ sub: 'user-2' })}` }))
  t.equal(other.body.message, 'Invalid token: claims rejected')
})

t.test('timing options have sane bounds: heartbeat, idle and slow-consumer timers are off or at least 1 s', async (t) => {
  const max = 2 ** 31 - 1
  t.equal(verdict({ heartbeatInterval: 1 }), `heartbeatInterval must be 0 (off) or an integer from 1000 to ${max} (ms)`, 'a ping every millisecond is refused')
  t.equal(verdict({ heartbeatInterval: 999 }), `heartbeatInterval must be 0 (off) or an integer from 1000 to ${max} (ms)`)
  t.equal(verdict({ idleTimeout: 10 }), `idleTimeout must be 0 (off) or an integer from 1000 to ${max} (ms)`)
  t.equal(verdict({ slowConsumerTimeout: 500 }), `slowConsumerTimeout must be 0 (off) or an integer from 1000 to ${max} (ms)`)
  t.equal(verdict({ connectTimeout: 0 }), `connectTimeout must be an integer from 100 to ${max} (ms)`)
  t.equal(verdict({ closeTimeout: 0 }), `closeTimeout must be an integer from 100 to ${max} (ms)`)
  t.equal(verdict({ drainTimeout: -1 }), `drainTimeout must be an integer from 0 to ${max} (ms)`)
  t.equal(verdict({ idleTimeout: max + 1 }), `idleTimeout must be 0 (off) or an integer from 1000 to ${max} (ms)`, 'Node would fire a longer timer at once')
  t.equal(verdict({ drainTimeout: max, closeTimeout: 100 }), `drainTimeout + closeTimeout must be at most ${max} (ms)`)
  t.equal(verdict({ heartbeatInterval: 0, idleTimeout: 0, slowConsumerTimeout: 0, drainTimeout: 0, connectTimeout: 100, closeTimeout: 100 }), 'ok')
  t.equal(verdict({ heartbeatInterval: 1000, idleTimeout: max, slowConsumerTimeout: 1000 }), 'ok')
})

t.test('prefix applies to the gateway\'s routes, as for any Fastify plugin', async (t) => {
  const { gateway, backend } = await startPair(t, { prefix: '/api', managementApi: { authorize: () => true } })
  const ws = await connect(`ws://127.0.0.1:${gateway.port}/api/ws`)
  ws.send('through /api/ws')
  t.equal((await nextMessage(ws)).data.toString(), 'through /api/ws')
  ws.close()
  t.equal((await handshake(gateway.port, authHeaders())).status, 404, '/ws is not served')
  t.same(Object.keys(gateway.app.wsGateway.stats().byPath), ['/api/ws'])
  const list = async (url: string): Promise<number> => (await gateway.app.inject({ url, headers: { authorization: 'Bearer admin' } })).statusCode
  t.equal(await list('/api/@connections'), 200, 'the REST surface is under the prefix too')
  t.equal(await list('/@connections'), 404)
  t.equal(backend.requests.length, 1)
  t.equal(verdict({ prefix: 42 }), 'prefix must be a string')
})

t.test('logLevel applies to the gateway route\'s logs, and must be a level the logger knows', async (t) => {
  const { lines, logger } = captureLogs('info')
  const { gateway } = await startPair(t, { logLevel: 'warn' }, undefined, { logger }, (app) => { app.get('/health', async () => 'ok') })
  const ws = await connect(gateway.url)
  ws.close()
  await gateway.app.inject('/health')
  const byUrl = (url: string): LogLine[] => lines.filter((l) => (l.req as { url?: string } | undefined)?.url === url)
  t.equal(byUrl('/ws').length, 0, 'no info line from the gateway route')
  t.equal(lines.filter((l) => l.msg === 'ws gateway connection open').length, 0)
  t.equal(byUrl('/health').length, 1, 'the app\'s routes keep the app\'s level')
  const app = Fastify({ logger: { level: 'info' } })
  t.teardown(() => app.close())
  await t.rejects(async () => { await app.register(wsGateway, { ...valid, logLevel: 'loud' as 'info' }) },
    { code: 'FST_WS_GATEWAY_INVALID_OPTION', message: /logLevel must be one of trace, debug, info, warn, error, fatal/ })
  t.equal(verdict({ logLevel: 'anything' }), 'ok', 'a logger that does not tell its levels (logger: false) takes any name')
  t.equal(verdict({ logLevel: 3 }), 'logLevel must be a level name')
})

t.test('logSerializers merge with the gateway\'s own: the app\'s serializers apply, a tokenQuery token stays redacted', async (t) => {
  const { lines, logger } = captureLogs('info')
  const token = sign()
  const { gateway } = await startPair(t, {
    tokenQuery: 'access_token',
    // Fastify types serializers as returning strings; they return what is logged.
    logSerializers: {
      req: (request: { url: string }) => ({ path: request.url, nested: { list: [request.url] }, when: new Date(0), none: null, n: 1 }),
      backendId: (id: string) => `backend:${id}`
    } as unknown as WsGatewayOptions['logSerializers']
  }, undefined, { logger })
  const ws = await connect(`${gateway.url}?access_token=${token}`, { id: BACKEND_ID })
  ws.close()
  const incoming = lines.find((l) => l.msg === 'incoming request')
  t.same(incoming?.req, { path: '/ws?access_token=[redacted]', nested: { list: ['/ws?access_token=[redacted]'] }, when: new Date(0).toISOString(), none: null, n: 1 })
  t.equal(lines.find((l) => l.msg === 'ws gateway connection open')?.backendId, `backend:${BACKEND_ID}`, 'the app\'s serializer of a key of its own')
  t.notMatch(JSON.stringify(lines), token)
  t.equal(verdict({ logSerializers: { req: 'x' } }), 'logSerializers must be an object of functions')
})
