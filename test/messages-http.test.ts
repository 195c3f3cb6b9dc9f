import { once } from 'node:events'
import https from 'node:https'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { createCertificate } from '../example/tls'
import { ask, connect, frames, sign, startHttpBackend, startMessageGateway, tokenHeaders } from './helpers'

/*
 * Message mode through HTTP backends, over real sockets: the reply envelope, the headers a backend
 * can trust, and every row of the README's error table that an HTTP route can produce.
 */

t.test('a message is POSTed as JSON and answered with a reply carrying its correlation id', async (t) => {
  const backend = await startHttpBackend(t, (seen, res) => {
    res.writeHead(201, { 'content-type': 'application/json; charset=utf-8' }).end(JSON.stringify({ echoed: JSON.parse(seen.body) }))
  })
  const gateway = await startMessageGateway(t, { routes: { 'chat.send': { http: `${backend.url}/send?x=1` } } })
  const ws = await connect(gateway.url, tokenHeaders({ sub: 'alice' }))
  const message = { action: 'chat.send', id: 'c-1', text: 'hi' }
  t.same(await ask(ws, message), { type: 'reply', id: 'c-1', route: 'chat.send', status: 201, data: { echoed: message } })
  const [seen] = backend.requests
  t.equal(seen.method, 'POST')
  t.equal(seen.url, '/send?x=1')
  t.equal(seen.headers['content-type'], 'application/json')
  t.equal(seen.headers['x-user-sub'], 'alice')
  t.equal(seen.headers['x-correlation-id'], 'c-1')
  t.equal(seen.headers['x-route-key'], 'chat.send')
  t.match(seen.headers['x-connection-id'], /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{16}$/)
  t.same(JSON.parse(seen.body), message)
  ws.close()
})

t.test('the backend gets the identity the gateway vouches for, never headers the client made up', async (t) => {
  const backend = await startHttpBackend(t)
  const gateway = await startMessageGateway(t, {
    routes: {
      fixed: { http: { url: backend.url, method: 'PUT', headers: { 'x-api-key': 'k', 'X-User-Sub': 'forged-by-config' } } },
      token: { http: { url: backend.url, headers: (connection) => ({ authorization: `Bearer ${connection.token}`, 'x-connection-id': 'forged' }) } }
    }
  })
  const token = sign({ sub: 'bob' })
  const ws = await connect(gateway.url, { authorization: `Bearer ${token}`, 'x-user-sub': 'mallory', 'x-forwarded-for': '6.6.6.6' })
  await ask(ws, { action: 'fixed', id: 7 })
  await ask(ws, { action: 'token' })
  const [fixed, withToken] = backend.requests
  t.equal(fixed.method, 'PUT')
  t.equal(fixed.headers['x-api-key'], 'k')
  t.equal(fixed.headers['x-user-sub'], 'bob', 'the token decides, not the config nor the client')
  t.equal(fixed.headers['x-correlation-id'], '7')
  t.equal(fixed.headers['x-forwarded-for'], undefined)
  t.equal(withToken.headers.authorization, `Bearer ${token}`)
  t.not(withToken.headers['x-connection-id'], 'forged')
  t.equal(withToken.headers['x-connection-id'], fixed.headers['x-connection-id'], 'one id per connection')
  t.equal(withToken.headers['x-correlation-id'], undefined, 'no correlation id, no header')
  ws.close()
})

t.test('2xx bodies: 204 is null, JSON is a value, anything else a string', async (t) => {
  const backend = await startHttpBackend(t, (seen, res) => {
    const { kind } = JSON.parse(seen.body)
    if (kind === 'none') res.writeHead(204).end()
    else if (kind === 'text') res.writeHead(200, { 'content-type': 'text/plain' }).end('plain words')
    else if (kind === 'empty') res.writeHead(200, { 'content-type': 'text/plain' }).end()
    else res.writeHead(200, { 'content-type': 'application/problem+json' }).end('[1,2]')
  })
  const gateway = await startMessageGateway(t, { routes: { $default: { http: backend.url } } })
  const ws = await connect(gateway.url, tokenHeaders())
  t.same(await ask(ws, { action: 'a', kind: 'none' }), { type: 'reply', id: null, route: 'a', status: 204, data: null })
  t.same((await ask(ws, { action: 'a', kind: 'text' })).data, 'plain words')
  t.same((await ask(ws, { action: 'a', kind: 'empty' })).data, null)
  t.same((await ask(ws, { action: 'a', kind: 'json' })).data, [1, 2])
  ws.close()
})

t.test('INVALID_MESSAGE 400: not JSON, no route key, a bad correlation id, a failed schema — never echoing the message', async (t) => {
  const backend = await startHttpBackend(t)
  const gateway = await startMessageGateway(t, {
    routes: { 'chat.send': { http: backend.url, schema: { type: 'object', required: ['text'], properties: { text: { type: 'string', maxLength: 5 } } } } }
  })
  const ws = await connect(gateway.url, tokenHeaders())
  const invalid = (id: unknown, route: unknown, message: string): Record<string, unknown> =>
    ({ type: 'error', id, route, code: 'FST_WS_GATEWAY_INVALID_MESSAGE', status: 400, message: `Invalid message: ${message}` })
  t.same(await ask(ws, '{"action": "chat.send", secret'), invalid(null, null, 'not JSON'))
  t.same(await ask(ws, { id: 'n1', text: 'hi' }), invalid('n1', null, 'no route key'))
  t.same(await ask(ws, { action: 42, id: 'n2' }), invalid('n2', null, 'no route key'))
  t.same(await ask(ws, { action: 'chat.send', id: { nested: true } }), invalid(null, null, 'the correlation id must be a number or 1 to 256 printable ASCII characters'))
  t.same(await ask(ws, { action: 'chat.send', id: 'line\nbreak' }), invalid(null, null, 'the correlation id must be a number or 1 to 256 printable ASCII characters'))
  t.same(await ask(ws, { action: 'chat.send', id: 's1', text: 'far too long a secret' }), invalid('s1', 'chat.send', '/text must NOT have more than 5 characters'))
  t.same(await ask(ws, { action: 'chat.send', id: 's2' }), invalid('s2', 'chat.send', "(message) must have required property 'text'"))
  t.equal(backend.requests.length, 0, 'nothing reached the backend')
  t.same(await ask(ws, { action: 'chat.send', id: 's3', text: 'ok' }), { type: 'reply', id: 's3', route: 'chat.send', status: 200, data: { action: 'chat.send', id: 's3', text: 'ok' } })
  ws.close()
})

t.test('UNKNOWN_ROUTE 404 without $default; with it, unknown keys go there', async (t) => {
  const backend = await startHttpBackend(t)
  const without = await startMessageGateway(t, { routes: { known: { http: backend.url } } })
  const ws = await connect(without.url, tokenHeaders())
  t.same(await ask(ws, { action: 'nope', id: 1 }), { type: 'error', id: 1, route: 'nope', code: 'FST_WS_GATEWAY_UNKNOWN_ROUTE', status: 404, message: 'Unknown route "nope"' })
  ws.close()
  const withDefault = await startMessageGateway(t, { routes: { known: { http: `${backend.url}/known` }, $default: { http: `${backend.url}/default` } } })
  const ws2 = await connect(withDefault.url, tokenHeaders())
  t.match(await ask(ws2, { action: 'nope', id: 2 }), { type: 'reply', id: 2, route: 'nope', status: 200 })
  t.equal(backend.requests[0].url, '/default')
  t.equal(backend.requests[0].headers['x-route-key'], 'nope', 'the key the message asked for')
  ws2.close()
})

t.test('RATE_LIMITED 429 with retryAfter, per connection and per route', async (t) => {
  const backend = await startHttpBackend(t)
  const gateway = await startMessageGateway(t, {
    maxInFlight: 1,
    routes: { slow: { http: backend.url, rateLimit: { messagesPerSecond: 2 } }, free: { http: backend.url } }
  })
  const ws = await connect(gateway.url, tokenHeaders())
  for (let i = 0; i < 5; i++) ws.send(JSON.stringify({ action: 'slow', id: i }))
  const got = await frames(ws, 5)
  t.same(got.map((f) => f.type), ['reply', 'reply', 'error', 'error', 'error'])
  t.same(got[2], { type: 'error', id: 2, route: 'slow', code: 'FST_WS_GATEWAY_RATE_LIMITED', status: 429, message: 'Too many messages, retry later', retryAfter: 1 })
  t.equal((await ask(ws, { action: 'free' })).type, 'reply', 'another route has its own budget')
  const other = await connect(gateway.url, tokenHeaders())
  t.equal((await ask(other, { action: 'slow' })).type, 'reply', 'another connection has its own budget')
  ws.close()
  other.close()
})

t.test('a registration-wide rate limit counts every route of a connection', async (t) => {
  const backend = await startHttpBackend(t)
  const gateway = await startMessageGateway(t, { maxInFlight: 1, rateLimit: { messagesPerSecond: 1 }, routes: { a: { http: backend.url }, b: { http: backend.url } } })
  const ws = await connect(gateway.url, tokenHeaders())
  t.equal((await ask(ws, { action: 'a' })).type, 'reply')
  t.equal((await ask(ws, { action: 'b' })).code, 'FST_WS_GATEWAY_RATE_LIMITED')
  ws.close()
})

t.test('BACKEND_REJECTED: a 4xx keeps its status and its body goes to the client as data', async (t) => {
  const backend = await startHttpBackend(t, (_seen, res) => {
    res.writeHead(422, { 'content-type': 'application/json' }).end('{"field":"text","problem":"too rude"}')
  })
  const gateway = await startMessageGateway(t, { routes: { 'chat.send': { http: backend.url } } })
  const ws = await connect(gateway.url, tokenHeaders())
  t.same(await ask(ws, { action: 'chat.send', id: 'r' }), {
    type: 'error', id: 'r', route: 'chat.send', code: 'FST_WS_GATEWAY_BACKEND_REJECTED', status: 422, message: 'The backend rejected the message', data: { field: 'text', problem: 'too rude' }
  })
  ws.close()
})

t.test('BACKEND_ERROR 502: a 5xx body is logged at warn, never forwarded; a 3xx is BAD_GATEWAY', async (t) => {
  const backend = await startHttpBackend(t, (seen, res) => {
    if (JSON.parse(seen.body).action === 'moved') res.writeHead(302, { location: '/elsewhere' }).end()
    else res.writeHead(500, { 'content-type': 'text/plain' }).end('stack trace: db password=hunter2')
  })
  const lines: Array<Record<string, unknown>> = []
  const stream = { write: (line: string) => { lines.push(JSON.parse(line)) } }
  const gateway = await startMessageGateway(t, { routes: { $default: { http: backend.url } } }, {}, { logger: { level: 'warn', stream } })
  const ws = await connect(gateway.url, tokenHeaders())
  const error = await ask(ws, { action: 'boom', id: 'e' })
  t.same(error, { type: 'error', id: 'e', route: 'boom', code: 'FST_WS_GATEWAY_BACKEND_ERROR', status: 502, message: 'The backend failed to handle the message' })
  t.notMatch(JSON.stringify(error), /hunter2/)
  t.match(lines, [{ level: 40, msg: 'ws gateway backend failed a message', status: 500 }])
  t.match(await ask(ws, { action: 'moved' }), { code: 'FST_WS_GATEWAY_BAD_GATEWAY', status: 502 })
  ws.close()
})

t.test('BAD_GATEWAY 502: refused, unknown host, untrusted TLS — the socket stays open', async (t) => {
  const closed = await startHttpBackend(t)
  const closedUrl = closed.url
  closed.server.close()
  const { cert, key } = await createCertificate()
  const tlsServer = https.createServer({ cert, key }, (_req, res) => res.writeHead(200, { 'content-type': 'application/json' }).end('{}'))
  tlsServer.listen(0, '127.0.0.1')
  await once(tlsServer, 'listening')
  t.teardown(() => tlsServer.close())
  const tlsUrl = `https://127.0.0.1:${(tlsServer.address() as AddressInfo).port}`
  const gateway = await startMessageGateway(t, {
    routes: {
      refused: { http: closedUrl },
      dns: { http: 'http://no-such-host.invalid/x' },
      untrusted: { http: tlsUrl },
      trusted: { http: { url: tlsUrl, tls: { ca: cert } } }
    }
  })
  const ws = await connect(gateway.url, tokenHeaders())
  for (const action of ['refused', 'dns', 'untrusted']) {
    t.same(await ask(ws, { action, id: action }), { type: 'error', id: action, route: action, code: 'FST_WS_GATEWAY_BAD_GATEWAY', status: 502, message: 'The backend could not be reached' })
  }
  t.same(await ask(ws, { action: 'trusted', id: 'ok' }), { type: 'reply', id: 'ok', route: 'trusted', status: 200, data: {} })
  ws.close()
})

t.test('a backend answer over maxPayload is BACKEND_ERROR', async (t) => {
  const backend = await startHttpBackend(t, (_seen, res) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify('x'.repeat(5000))))
  const gateway = await startMessageGateway(t, { routes: { big: { http: backend.url } } }, { maxPayload: 4096 })
  const ws = await connect(gateway.url, tokenHeaders())
  t.match(await ask(ws, { action: 'big' }), { code: 'FST_WS_GATEWAY_BACKEND_ERROR', status: 502 })
  ws.close()
})
