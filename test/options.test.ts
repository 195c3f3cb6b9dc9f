import t from 'tap'
import Fastify from 'fastify'
import wsGateway from '../lib/index'
import { validateOptions } from '../lib/options/validate'
import { DEFAULT_MAX_PAYLOAD, DEFAULT_HEARTBEAT_INTERVAL, DEFAULT_CONNECT_TIMEOUT } from '../lib/options/defaults'
import type { WsGatewayOptions } from '../lib/options/types'
import { isSendable, truncateReason } from '../lib/relay/close-codes'

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
  t.equal(backend?.url.href, 'wss://h:1/p')
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
    [{ ...valid, heartbeatInterval: -1 }, /heartbeatInterval must be an integer >= 0/],
    [{ ...valid, connectTimeout: 1.5 }, /connectTimeout must be an integer >= 1/],
    [{ ...valid, idleTimeout: '5' }, /idleTimeout must be an integer >= 0/],
    [{ ...valid, highWaterMark: 0 }, /highWaterMark must be an integer >= 1/],
    [{ ...valid, closeTimeout: -5 }, /closeTimeout must be an integer >= 0/],
    [{ ...valid, clockTolerance: 'x' }, /clockTolerance must be an integer >= 0/],
    [{ jwt: { secret: 's' } }, /give backends, resolveBackend or both/],
    [{ ...valid, backends: [] }, /backends must be an object mapping IDs to backends/],
    [{ ...valid, backends: { 'bad id': 'ws://h' } }, /backends\["bad id"\]: IDs must match/],
    [{ ...valid, backends: { A: 42 } }, /backends\["A"\] must be a URL string or an object with a url/],
    [{ ...valid, backends: { A: 'not a url' } }, /backends\["A"\].url must be a ws: or wss: URL/],
    [{ ...valid, backends: { A: 'http://h' } }, /backends\["A"\].url must be a ws: or wss: URL/],
    [{ ...valid, backends: { A: 'ws://h/#x' } }, /backends\["A"\].url must not have a #fragment/],
    [{ ...valid, backends: { A: { url: 'ws://h', headers: { x: 1 } } } }, /backends\["A"\].headers must be an object of string values/],
    [{ ...valid, backends: { A: { url: 'ws://h', perMessageDeflate: 'yes' } } }, /backends\["A"\].perMessageDeflate must be a boolean or an object/],
    [{ ...valid, backends: { A: { url: 'ws://h', maxPayload: 0 } } }, /backends\["A"\].maxPayload must be an integer >= 1/],
    [{ ...valid, resolveBackend: 'x' }, /resolveBackend must be a function/],
    [{ ...valid, authorize: {} }, /authorize must be a function/],
    [{ ...valid, rewriteRequestHeaders: 1 }, /rewriteRequestHeaders must be a function/],
    [{ ...valid, allowedOrigins: 'https://a' }, /allowedOrigins must be an array of origins or a function/],
    [{ ...valid, jwt: 'secret' }, /jwt must be an object of @fastify\/jwt options/],
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

t.test('Fastify\'s own register options are accepted', async (t) => {
  t.doesNotThrow(() => validateOptions({ ...valid, prefix: '/api', logLevel: 'warn' } as WsGatewayOptions))
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
