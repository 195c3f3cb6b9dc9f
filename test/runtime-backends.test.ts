import t from 'tap'
import Fastify from 'fastify'
import wsGateway from '../lib/index'
import { BACKEND_ID, SECRET, authHeaders, connect, handshake, nextMessage, startGateway } from './helpers'
import { startReplicas, whoIs } from './pool-helpers'

t.test('setBackend replaces a backend live: open connections run on, new ones use the new config', async (t) => {
  const [a, b] = await startReplicas(t, 2)
  const gateway = await startGateway(t, { backends: { [BACKEND_ID]: a.url }, jwt: { secret: SECRET }, heartbeatInterval: 0 })
  const first = await connect(gateway.url)
  t.equal(await whoIs(first), 'a')

  gateway.app.wsGateway.setBackend(BACKEND_ID, { urls: [b.url] })
  first.send('still here')
  t.equal((await nextMessage(first)).data.toString(), 'still here', 'the connection to a was not disturbed')
  const second = await connect(gateway.url)
  t.equal(await whoIs(second), 'b')

  gateway.app.wsGateway.setBackend('Backend_NEW', b.url)
  const third = await connect(gateway.url, authHeaders({ id: 'Backend_NEW' }))
  t.equal(await whoIs(third), 'b', 'a new ID works at once')

  t.equal(gateway.app.wsGateway.deleteBackend(BACKEND_ID), true)
  t.equal(gateway.app.wsGateway.deleteBackend(BACKEND_ID), false, 'deleting twice finds nothing')
  second.send('and here')
  t.equal((await nextMessage(second)).data.toString(), 'and here', 'open connections outlive a deleted backend')
  const gone = await handshake(gateway.port, authHeaders())
  t.equal(gone.status, 404)
  t.equal(gone.body.code, 'FST_WS_GATEWAY_UNKNOWN_BACKEND')
  t.same(gateway.app.wsGateway.stats().byBackend[BACKEND_ID].open, 2, 'stats still count the open connections by their backend')
  for (const ws of [first, second, third]) ws.close()
})

t.test('setBackend validates like the backends option', async (t) => {
  const gateway = await startGateway(t, { backends: { [BACKEND_ID]: 'ws://127.0.0.1:1' }, jwt: { secret: SECRET } })
  const { wsGateway: api } = gateway.app
  t.throws(() => api.setBackend('bad id', 'ws://h'), { code: 'FST_WS_GATEWAY_INVALID_OPTION', message: /setBackend\("bad id"\): IDs must match/ })
  t.throws(() => api.setBackend('X', 'http://h'), { message: /setBackend\("X"\).url must be a ws: or wss: URL/ })
  t.throws(() => api.setBackend('X', { urls: [] }), { message: /setBackend\("X"\).urls must be a non-empty array/ })
  t.throws(() => api.setBackend('X', { url: 'ws://h', balance: 'random' as never }), { message: /setBackend\("X"\).balance must be one of/ })
  t.throws(() => api.setBackend(BACKEND_ID, 'ws://h', '/other'), { message: /setBackend: no gateway is registered at "\/other"/ })
  t.equal(api.deleteBackend('X', '/ws'), false)
})

t.test('with several registrations setBackend and deleteBackend need the path', async (t) => {
  const [a] = await startReplicas(t, 1)
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(wsGateway, { path: '/one', backends: { [BACKEND_ID]: a.url }, jwt: { secret: SECRET } })
  await app.register(wsGateway, { path: '/two', backends: { [BACKEND_ID]: a.url }, jwt: { secret: SECRET } })
  t.throws(() => app.wsGateway.setBackend('X', a.url), { message: /setBackend: name the path, 2 gateways are registered/ })
  t.throws(() => app.wsGateway.deleteBackend('X'), { message: /deleteBackend: name the path/ })
  app.wsGateway.setBackend('X', a.url, '/two')
  t.equal(app.wsGateway.deleteBackend('X', '/one'), false)
  t.equal(app.wsGateway.deleteBackend('X', '/two'), true)
})
