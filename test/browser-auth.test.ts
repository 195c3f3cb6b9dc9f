import t from 'tap'
import Fastify from 'fastify'
import wsGateway from '../lib/index'
import { validateOptions } from '../lib/options/validate'
import { BACKEND_ID, SECRET, captureLogs, connect, handshake, sign, startBackend, startGateway, startPair } from './helpers'

t.test('a token in the subprotocol list: used, never forwarded, never echoed', async (t) => {
  const { gateway, backend } = await startPair(t, {}, { handleProtocols: (protocols) => protocols.has('chat') ? 'chat' : false })
  const token = sign()
  const ws = await connect(gateway.url, { id: BACKEND_ID }, ['bearer', token, 'chat'])
  t.equal(ws.protocol, 'chat', 'the backend\'s choice')
  const req = backend.requests[0]
  t.equal(req.headers['sec-websocket-protocol'], 'chat')
  t.equal(req.headers.authorization, undefined)
  t.notMatch(JSON.stringify(req.headers), token)
  ws.close()
})

t.test('the marker is selected when the backend chooses no protocol', async (t) => {
  const { gateway, backend } = await startPair(t)
  const res = await handshake(gateway.port, { id: BACKEND_ID, 'sec-websocket-protocol': `bearer, ${sign()}` })
  t.equal(res.status, 101)
  t.equal(res.headers['sec-websocket-protocol'], 'bearer')
  t.equal(backend.requests[0].headers['sec-websocket-protocol'], undefined, 'nothing offered to the backend')
  res.socket?.destroy()
})

t.test('two different tokens are refused with 400; the same one twice is fine', async (t) => {
  const { gateway } = await startPair(t)
  const token = sign()
  const conflict = await handshake(gateway.port, { id: BACKEND_ID, authorization: `Bearer ${sign({ sub: 'other' })}`, 'sec-websocket-protocol': `bearer, ${token}` })
  t.equal(conflict.status, 400)
  t.equal(conflict.body.code, 'FST_WS_GATEWAY_CONFLICTING_TOKENS')
  const same = await handshake(gateway.port, { id: BACKEND_ID, authorization: `Bearer ${token}`, 'sec-websocket-protocol': `bearer, ${token}` })
  t.equal(same.status, 101)
  same.socket?.destroy()
})

t.test('tokenProtocol: false treats the marker as an ordinary protocol', async (t) => {
  const { gateway } = await startPair(t, { tokenProtocol: false })
  const res = await handshake(gateway.port, { id: BACKEND_ID, 'sec-websocket-protocol': `bearer, ${sign()}` })
  t.equal(res.status, 401)
})

t.test('idQuery: the ID from the query when the header is absent, never forwarded', async (t) => {
  const { gateway, backend } = await startPair(t, { idQuery: 'id' })
  const ws = await connect(`${gateway.url}?id=${BACKEND_ID}&room=1`, { authorization: `Bearer ${sign()}` })
  t.equal(backend.requests[0].url, '/?room=1')
  ws.close()
  const repeated = await handshake(gateway.port, { authorization: `Bearer ${sign()}` }, `/ws?id=${BACKEND_ID}&id=${BACKEND_ID}`)
  t.equal(repeated.status, 400)
  const odd = await handshake(gateway.port, { authorization: `Bearer ${sign()}` }, '/ws?id=../x')
  t.equal(odd.status, 400)
  const { gateway: noQuery } = await startPair(t)
  const ignored = await handshake(noQuery.port, { authorization: `Bearer ${sign()}` }, `/ws?id=${BACKEND_ID}`)
  t.equal(ignored.status, 400, 'without idQuery the query is not read')
})

t.test('tokenQuery: accepted, redacted from the logs and never forwarded', async (t) => {
  const { logger, lines } = captureLogs()
  const backend = await startBackend(t)
  const gateway = await startGateway(t, { backends: { [BACKEND_ID]: backend.url }, jwt: { secret: SECRET }, tokenQuery: 'access_token' }, { logger })
  const token = sign()
  const ws = await connect(`${gateway.url}?a=1&access_token=${token}&b=2`, { id: BACKEND_ID })
  t.equal(backend.requests[0].url, '/?a=1&b=2')
  ws.close()
  const incoming = lines.find((l) => l.msg === 'incoming request')
  t.match(JSON.stringify(incoming), '/ws?a=1&access_token=[redacted]&b=2')
  t.notMatch(JSON.stringify(lines), token)
})

t.test('tokenCookie: needs allowedOrigins, then reads the cookie', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await t.rejects(async () => { await app.register(wsGateway, { backends: { A: 'ws://127.0.0.1:1' }, jwt: { secret: SECRET }, tokenCookie: 'jwt' }) },
    { code: 'FST_WS_GATEWAY_INVALID_OPTION', message: /tokenCookie needs allowedOrigins/ })
  const { gateway } = await startPair(t, { tokenCookie: 'jwt', allowedOrigins: ['https://app.test'] })
  const ws = await connect(gateway.url, { id: BACKEND_ID, cookie: `other=1; jwt=${sign()}`, origin: 'https://app.test' })
  ws.close()
  const hijack = await handshake(gateway.port, { id: BACKEND_ID, cookie: `jwt=${sign()}`, origin: 'https://evil.test' })
  t.equal(hijack.status, 403, 'another site cannot ride on the cookie')
})

t.test('names for the browser options are validated', async (t) => {
  const base = { backends: { A: 'ws://h' }, jwt: { secret: 's' } }
  for (const name of ['tokenProtocol', 'idQuery', 'tokenQuery', 'tokenCookie']) {
    t.throws(() => validateOptions({ ...base, [name]: 'bad name' }), { message: new RegExp(`${name} must be a non-empty name`) })
  }
})
