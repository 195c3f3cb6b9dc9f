import t from 'tap'
import { BACKEND_ID, SECRET, closeOf, connectWithId, nextMessage, startBackend, startGateway, startPair } from './helpers'
import { startRedis } from './redis-server'

const ADMIN = { authorization: 'Bearer admin-key' }

/** A gateway with the REST surface on, letting through requests that carry `admin-key`. */
async function startManaged (t: Parameters<typeof startPair>[0], extra: Parameters<typeof startPair>[1] = {}): ReturnType<typeof startPair> {
  return await startPair(t, {
    managementApi: { authorize: (request) => request.headers.authorization === ADMIN.authorization },
    ...extra
  })
}

t.test('the REST surface sends, reads, lists and closes connections', async (t) => {
  const { gateway, backend } = await startManaged(t, { maxPayload: 1000 })
  const app = gateway.app
  const { ws, id } = await connectWithId(gateway.url)

  let res = await app.inject({ method: 'POST', url: `/@connections/${id}`, headers: { ...ADMIN, 'content-type': 'text/plain' }, payload: 'hello over REST' })
  t.equal(res.statusCode, 204)
  let message = await nextMessage(ws)
  t.same([message.data.toString(), message.isBinary], ['hello over REST', false], 'text for anything but octet-stream')
  res = await app.inject({ method: 'POST', url: `/@connections/${id}`, headers: { ...ADMIN, 'content-type': 'application/json' }, payload: '{"not":"parsed"}' })
  t.equal(res.statusCode, 204)
  t.equal((await nextMessage(ws)).data.toString(), '{"not":"parsed"}', 'a JSON body is passed as it came')
  res = await app.inject({ method: 'POST', url: `/@connections/${id}`, headers: { ...ADMIN, 'content-type': 'application/octet-stream' }, payload: Buffer.from([0, 255]) })
  t.equal(res.statusCode, 204)
  message = await nextMessage(ws)
  t.same([[...message.data], message.isBinary], [[0, 255], true])
  res = await app.inject({ method: 'POST', url: `/@connections/${id}`, headers: ADMIN })
  t.equal(res.statusCode, 204, 'an empty body is an empty message')
  t.equal((await nextMessage(ws)).data.length, 0)

  res = await app.inject({ method: 'GET', url: `/@connections/${id}`, headers: ADMIN })
  t.equal(res.statusCode, 200)
  t.match(res.json(), { id, path: '/ws', sub: 'user-1' })
  res = await app.inject({ method: 'GET', url: '/@connections?sub=user-1&limit=10', headers: ADMIN })
  t.same(res.json().items.map((item: { id: string }) => item.id), [id])
  res = await app.inject({ method: 'GET', url: '/@connections?limit=ten', headers: ADMIN })
  t.match([res.statusCode, res.json().code], [400, 'FST_WS_GATEWAY_INVALID_QUERY'])

  res = await app.inject({ method: 'POST', url: `/@connections/${id}`, headers: ADMIN, payload: 'x'.repeat(1001) })
  t.match([res.statusCode, res.json().code], [413, 'FST_WS_GATEWAY_PAYLOAD_TOO_LARGE'])
  res = await app.inject({ method: 'DELETE', url: `/@connections/${id}?code=1005`, headers: ADMIN })
  t.match([res.statusCode, res.json().code], [400, 'FST_WS_GATEWAY_INVALID_CLOSE_CODE'])

  const clientClosed = closeOf(ws)
  const backendClosed = closeOf(backend.sockets[0])
  res = await app.inject({ method: 'DELETE', url: `/@connections/${id}?code=4003&reason=bye`, headers: ADMIN })
  t.equal(res.statusCode, 204)
  t.same(await clientClosed, { code: 4003, reason: 'bye' })
  t.same(await backendClosed, { code: 1001, reason: 'going away' })
  while (await app.wsGateway.get(id) !== undefined) await new Promise((resolve) => setTimeout(resolve, 5))
  for (const method of ['GET', 'POST', 'DELETE'] as const) {
    res = await app.inject({ method, url: `/@connections/${id}`, headers: ADMIN, payload: method === 'POST' ? 'x' : undefined })
    t.match([res.statusCode, res.json().code], [410, 'FST_WS_GATEWAY_CONNECTION_GONE'], `${method} of a closed connection`)
  }
})

t.test('the REST surface refuses without credentials (401), when authorize says no (403) or throws (500, no text)', async (t) => {
  const { gateway } = await startPair(t, {
    managementApi: {
      prefix: '/admin/ws',
      authorize: (request) => {
        if (request.headers.authorization === 'Bearer boom') throw new Error('secret internal detail')
        return request.headers.authorization === ADMIN.authorization
      }
    }
  })
  const { id } = await connectWithId(gateway.url)
  let res = await gateway.app.inject({ method: 'GET', url: `/admin/ws/${id}` })
  t.match([res.statusCode, res.json().code], [401, 'FST_WS_GATEWAY_NO_CREDENTIALS'])
  res = await gateway.app.inject({ method: 'GET', url: `/admin/ws/${id}`, headers: { authorization: 'Bearer nope' } })
  t.match([res.statusCode, res.json().code], [403, 'FST_WS_GATEWAY_MANAGEMENT_FORBIDDEN'])
  res = await gateway.app.inject({ method: 'GET', url: `/admin/ws/${id}`, headers: { authorization: 'Bearer boom' } })
  t.match([res.statusCode, res.json().code], [500, 'FST_WS_GATEWAY_AUTHORIZE_FAILED'])
  t.notMatch(res.body, /secret internal detail/)
  res = await gateway.app.inject({ method: 'GET', url: `/admin/ws/${id}`, headers: ADMIN })
  t.equal(res.statusCode, 200, 'under its prefix')
  res = await gateway.app.inject({ method: 'GET', url: `/@connections/${id}`, headers: ADMIN })
  t.equal(res.statusCode, 404, 'and nowhere else')
})

t.test('a cluster outage is a 503 with Retry-After', async (t) => {
  const redis = await startRedis(t)
  const { gateway } = await startManaged(t, { retryAfter: 7, cluster: { redis: redis.url, nodeId: 'node-m', commandTimeout: 200 } })
  await redis.kill()
  for (const [method, url] of [['POST', `/@connections/other-node.${'x'.repeat(16)}`], ['GET', '/@connections']] as const) {
    const res = await gateway.app.inject({ method, url, headers: ADMIN, payload: method === 'POST' ? 'x' : undefined })
    t.match([res.statusCode, res.json().code, res.headers['retry-after']], [503, 'FST_WS_GATEWAY_CLUSTER_UNAVAILABLE', '7'], `${method} ${url}`)
  }
})

t.test('an error that is not the API\'s (an app hook throwing) is a 500 without its text', async (t) => {
  const backend = await startBackend(t)
  const gateway = await startGateway(t, { backends: { [BACKEND_ID]: backend.url }, jwt: { secret: SECRET }, managementApi: { authorize: () => true } }, {}, (app) => {
    app.addHook('onRequest', async (request) => {
      if (request.headers['x-crash'] !== undefined) throw new Error('internal detail')
    })
  })
  const res = await gateway.app.inject({ method: 'GET', url: '/@connections', headers: { ...ADMIN, 'x-crash': '1' } })
  t.same([res.statusCode, res.json()], [500, { statusCode: 500, error: 'Internal Server Error', message: 'Internal Server Error' }])
})
