import t from 'tap'
import { validateOptions } from '../../lib/options/validate'
import type { WsGatewayOptions } from '../../lib/index'
import { BACKEND_ID, SECRET, authHeaders, handshake, sign, startBackend, startGateway, startPair } from '../helpers'

/*
 * Issue 12 §2: identity and forwarding headers a client wrote reached the backend. The gateway now
 * drops their families (`dropHeaders`), writes the forwarding headers from what it saw itself
 * (honouring Fastify's trustProxy) and can pass the verified identity (`identityHeaders`).
 */

/** Headers by which proxies and identity-aware front ends vouch for a client, as a client could forge them. */
const FORGED = [
  'x-forwarded-port', 'x-forwarded-prefix', 'x-forwarded-ssl', 'x-forwarded-server', 'x-forwarded-user', 'true-client-ip',
  'x-client-ip', 'cf-connecting-ip', 'x-cluster-client-ip', 'fastly-client-ip', 'x-original-url', 'x-original-forwarded-for',
  'x-rewrite-url', 'x-user-id', 'x-user', 'x-auth-request-email', 'x-authenticated-userid', 'x-remote-user',
  'x-consumer-username', 'x-amzn-oidc-identity', 'x-envoy-external-address', 'x-ms-client-principal-name',
  'x-goog-authenticated-user-email', 'x-ssl-client-verify'
]

t.test('identity and forwarding headers a client forged never reach the backend', async (t) => {
  const { gateway, backend } = await startPair(t)
  const forged = Object.fromEntries(FORGED.map((name) => [name, '6.6.6.6']))
  const res = await handshake(gateway.port, authHeaders({ ...forged, 'x-real-ip': '6.6.6.6', forwarded: 'for=6.6.6.6', 'x-client-version': '7', 'x-custom': 'yes' }))
  t.equal(res.status, 101)
  const received = backend.requests[0].headers
  for (const name of FORGED.filter((name) => name !== 'x-forwarded-port')) t.equal(received[name], undefined, name)
  t.equal(received['x-forwarded-port'], String(gateway.port), 'X-Forwarded-Port is the gateway\'s own')
  t.equal(received['x-real-ip'], '127.0.0.1', 'X-Real-IP is the gateway\'s own')
  t.equal(received.forwarded, `for=127.0.0.1;host="127.0.0.1:${gateway.port}";proto=http`)
  t.equal(received['x-client-version'], '7', 'an ordinary app header still passes')
  t.equal(received['x-custom'], 'yes')
  res.socket?.destroy()
})

t.test('dropHeaders: an array extends the default list, a function replaces it', async (t) => {
  const extended = await startPair(t, { dropHeaders: ['x-tenant', 'X-Internal-*'] })
  const res = await handshake(extended.gateway.port, authHeaders({ 'x-tenant': 't', 'x-internal-role': 'r', 'x-user-id': 'u', 'x-custom': 'yes' }))
  t.equal(res.status, 101)
  const got = extended.backend.requests[0].headers
  t.same([got['x-tenant'], got['x-internal-role'], got['x-user-id'], got['x-custom']], [undefined, undefined, undefined, 'yes'])
  res.socket?.destroy()

  const replaced = await startPair(t, { dropHeaders: (defaults) => defaults.filter((name) => name !== 'cf-*') })
  const res2 = await handshake(replaced.gateway.port, authHeaders({ 'cf-ray': 'abc', 'x-user-id': 'u' }))
  const got2 = replaced.backend.requests[0].headers
  t.same([got2['cf-ray'], got2['x-user-id']], ['abc', undefined], 'cf-* passes once taken off the list; the rest still applies')
  res2.socket?.destroy()

  const none = await startPair(t, { dropHeaders: () => ['*'] })
  const res3 = await handshake(none.gateway.port, authHeaders({ 'x-custom': 'yes' }))
  const got3 = none.backend.requests[0].headers
  t.same([got3['x-custom'], got3.authorization, got3['x-forwarded-for']], [undefined, undefined, '127.0.0.1'], '"*" drops every client header')
  res3.socket?.destroy()
})

t.test('with trustProxy, the trusted X-Forwarded-For chain is extended and host, proto and port are the original ones', async (t) => {
  const backend = await startBackend(t)
  const options = { backends: { [BACKEND_ID]: backend.url }, jwt: { secret: SECRET }, heartbeatInterval: 0 }
  const viaProxy = { 'x-forwarded-for': '203.0.113.7, 10.0.0.2', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'app.example' }

  // Only the gateway's peer is trusted: 10.0.0.2 is the client as far as anyone can vouch.
  const one = await startGateway(t, options, { trustProxy: '127.0.0.1' })
  ;(await handshake(one.port, authHeaders(viaProxy))).socket?.destroy()
  const first = backend.requests[0].headers
  t.equal(first['x-forwarded-for'], '10.0.0.2, 127.0.0.1')
  t.equal(first['x-real-ip'], '10.0.0.2')
  t.same([first['x-forwarded-proto'], first['x-forwarded-host'], first['x-forwarded-port']], ['https', 'app.example', '443'])
  t.equal(first.forwarded, 'for=10.0.0.2;host="app.example";proto=https, for=127.0.0.1')

  // Every hop trusted, with an IPv6 client and a plain-HTTP front end.
  const all = await startGateway(t, options, { trustProxy: true })
  ;(await handshake(all.port, authHeaders({ ...viaProxy, 'x-forwarded-for': '2001:db8::7, 10.0.0.2', 'x-forwarded-proto': 'http' }))).socket?.destroy()
  const second = backend.requests[1].headers
  t.equal(second['x-forwarded-for'], '2001:db8::7, 10.0.0.2, 127.0.0.1')
  t.equal(second['x-forwarded-port'], '80')
  t.equal(second.forwarded, 'for="[2001:db8::7]";host="app.example";proto=http, for=10.0.0.2, for=127.0.0.1')

  // No trustProxy: what the client wrote is ignored.
  const none = await startGateway(t, options)
  ;(await handshake(none.port, authHeaders(viaProxy))).socket?.destroy()
  const third = backend.requests[2].headers
  t.same([third['x-forwarded-for'], third['x-forwarded-proto'], third['x-forwarded-host']], ['127.0.0.1', 'http', `127.0.0.1:${none.port}`])
})

t.test('identityHeaders as a map: claims in headers the client cannot supply', async (t) => {
  const { gateway, backend } = await startPair(t, {
    identityHeaders: { sub: 'X-User-Sub', roles: 'x-roles', name: 'x-name', org: 'x-org', tenant: 'x-tenant-id' }
  })
  const token = sign({ roles: ['reader', 'writer'], name: 'Zoë', org: { id: 1 }, tenant: null })
  const res = await handshake(gateway.port, { id: BACKEND_ID, authorization: `Bearer ${token}`, 'x-user-sub': 'admin', 'x-roles': 'admin', 'x-tenant-id': 'forged' })
  t.equal(res.status, 101)
  const got = backend.requests[0].headers
  t.equal(got['x-user-sub'], 'user-1', 'the token\'s sub, not the client\'s header')
  t.equal(got['x-roles'], 'reader, writer')
  t.equal(got['x-name'], 'Zo%C3%AB', 'beyond printable ASCII: percent-encoded')
  t.equal(got['x-org'], '{"id":1}')
  t.equal(got['x-tenant-id'], undefined, 'a claim that is absent or null sends nothing, and the client\'s copy is dropped')
  res.socket?.destroy()
})

t.test('identityHeaders as a function: its headers win; if it fails, a coded 500 without its text', async (t) => {
  const { gateway, backend } = await startPair(t, {
    identityHeaders: (claims, request) => {
      if (request.headers['x-break'] === 'throw') throw new Error('identity store down')
      if (request.headers['x-break'] === 'value') return { 'x-subject': 'a\r\nx-admin: 1' }
      return { 'x-subject': String(claims.sub) }
    }
  })
  const ok = await handshake(gateway.port, authHeaders({ 'x-subject': 'forged' }))
  t.equal(backend.requests[0].headers['x-subject'], 'user-1')
  ok.socket?.destroy()
  for (const mode of ['throw', 'value']) {
    const res = await handshake(gateway.port, authHeaders({ 'x-break': mode }))
    t.equal(res.status, 500, mode)
    t.equal(res.body.code, 'FST_WS_GATEWAY_CALLBACK_FAILED', mode)
    t.notMatch(JSON.stringify(res.body), /identity store|Invalid character|x-subject/, mode)
  }
  t.equal(backend.requests.length, 1, 'the backend is never contacted after a failure')
})

t.test('dropHeaders and identityHeaders are validated at registration', async (t) => {
  const valid = { backends: { A: 'ws://127.0.0.1:1' }, jwt: { secret: SECRET } }
  const cases: Array<[Partial<WsGatewayOptions>, RegExp]> = [
    [{ dropHeaders: 'x-a' as never }, /dropHeaders must be an array of header names or a function/],
    [{ dropHeaders: ['bad name'] }, /dropHeaders must give header names or prefixes ending in "\*"/],
    [{ dropHeaders: [''] }, /dropHeaders must give header names/],
    [{ dropHeaders: [1 as never] }, /dropHeaders must give header names/],
    [{ dropHeaders: () => 'x-a' as never }, /dropHeaders must give header names/],
    [{ identityHeaders: 1 as never }, /identityHeaders must be an object of claim → header name, or a function/],
    [{ identityHeaders: { sub: 'bad name' } }, /identityHeaders.sub must be a header name/]
  ]
  for (const [options, message] of cases) {
    t.throws(() => validateOptions({ ...valid, ...options }), { code: 'FST_WS_GATEWAY_INVALID_OPTION', message }, String(message))
  }
})
