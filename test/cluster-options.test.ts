import t from 'tap'
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import wsGateway from '../lib/index'
import { validateOptions } from '../lib/options/validate'
import type { ClusterOptions } from '../lib/index'
import { BACKEND_ID, SECRET, connectWithId, headersFor, startBackend, startGateway, until, type TestLike } from './helpers'
import { startRedis } from './redis-server'

const valid = { backends: { A: 'ws://127.0.0.1:1' }, jwt: { secret: 's' } }

/** A gateway instance named `nodeId` on the cluster at `redis`, in front of `backendUrl`. */
async function nodeGateway (t: TestLike, backendUrl: string, cluster: ClusterOptions): ReturnType<typeof startGateway> {
  return await startGateway(t, { backends: { [BACKEND_ID]: backendUrl }, jwt: { secret: SECRET }, heartbeatInterval: 0, cluster })
}

t.test('cluster and managementApi options are checked, with the option\'s path in the message', async (t) => {
  const redis = 'redis://127.0.0.1:1'
  const cases: Array<[unknown, RegExp]> = [
    [{ cluster: 'redis://x' }, /cluster must be an object/],
    [{ cluster: { redis, typo: 1 } }, /unknown option "cluster.typo"/],
    [{ cluster: {} }, /cluster.redis must be a Redis URL, ioredis options or an ioredis instance/],
    [{ cluster: { redis: 42 } }, /cluster.redis must be/],
    [{ cluster: { redis: 'http://127.0.0.1' } }, /cluster.redis must be a redis: or rediss: URL/],
    [{ cluster: { redis, prefix: 'has space' } }, /cluster.prefix must match/],
    [{ cluster: { redis, prefix: 7 } }, /cluster.prefix must match/],
    [{ cluster: { redis, nodeId: 'a.b' } }, /cluster.nodeId must match/],
    [{ cluster: { redis, nodeId: 5 } }, /cluster.nodeId must match/],
    [{ cluster: { redis, nodeTtl: 999 } }, /cluster.nodeTtl must be an integer from 1000 to 2147483647 \(ms\)/],
    [{ cluster: { redis, nodeTtl: 2 ** 31 } }, /cluster.nodeTtl must be an integer from 1000 to 2147483647 \(ms\)/],
    [{ cluster: { redis, commandTimeout: 9 } }, /cluster.commandTimeout must be an integer from 10 to 2147483647 \(ms\)/],
    [{ managementApi: true }, /managementApi must be an object with an authorize function/],
    [{ managementApi: {} }, /managementApi.authorize is required/],
    [{ managementApi: { authorize: 'yes' } }, /managementApi.authorize must be a function/],
    [{ managementApi: { authorize: () => true, extra: 1 } }, /unknown option "managementApi.extra"/],
    [{ managementApi: { authorize: () => true, prefix: 'admin' } }, /managementApi.prefix must be a path/],
    [{ managementApi: { authorize: () => true, prefix: '/admin/' } }, /managementApi.prefix must be a path/]
  ]
  for (const [extra, message] of cases) {
    t.throws(() => validateOptions({ ...valid, ...extra as object }), { code: 'FST_WS_GATEWAY_INVALID_OPTION', message }, JSON.stringify(extra))
  }
  t.match(validateOptions({ ...valid, cluster: { redis: { host: '127.0.0.1' } } }).cluster, { prefix: 'wsg', nodeTtl: 10000, commandTimeout: 1000 })
  t.equal(validateOptions({ ...valid, managementApi: false }).managementApi, undefined)
  t.equal(validateOptions({ ...valid, managementApi: { authorize: () => true } }).managementApi?.prefix, '/@connections')
})

t.test('only the app\'s first gateway registration may set cluster', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  app.register(wsGateway, valid)
  app.register(wsGateway, { ...valid, path: '/two', cluster: { redis: 'redis://127.0.0.1:1' } })
  await t.rejects(async () => await app.ready(), /cluster must be set on the app's first gateway registration only/)
})

t.test('an ioredis instance of the app\'s is used and left open; ioredis options work too', async (t) => {
  const redis = await startRedis(t)
  const appRedis = new Redis(redis.url)
  t.teardown(() => appRedis.disconnect())
  const backend = await startBackend(t)
  const a = await nodeGateway(t, backend.url, { redis: appRedis, nodeId: 'with-instance' })
  const b = await nodeGateway(t, backend.url, { redis: { host: '127.0.0.1', port: redis.port }, nodeId: 'with-options', prefix: 'wsg' })
  const { ws, id } = await connectWithId(b.url, headersFor('dora', { 'user-agent': 'agent/1' }))
  const got = new Promise((resolve) => ws.once('message', (data) => resolve(String(data))))
  await until(async () => await a.app.wsGateway.get(id) !== undefined, 'the registration')
  t.match(await a.app.wsGateway.get(id), { node: 'with-options', userAgent: 'agent/1' })
  t.same(await a.app.wsGateway.broadcast('filtered', { path: '/ws', backendId: BACKEND_ID }), { connections: 1 })
  t.equal(await got, 'filtered')
  t.same(await a.app.wsGateway.broadcast('nobody', { backendId: 'Other' }), { connections: 0 })
  t.same(await a.app.wsGateway.broadcast('nobody either', { path: '/elsewhere' }), { connections: 0 })
  await a.app.close()
  t.equal(await appRedis.ping(), 'PONG', 'the app\'s client is still open after the gateway closed')
})

t.test('a node started again under the same id does not replay what was left in its inbox', async (t) => {
  const redis = await startRedis(t)
  // What an earlier run of node-z never read: a broadcast to all its connections.
  await redis.admin.xadd('wsg:{node-z}:inbox', '*', 'data', 'stale', 'bin', '0')
  const backend = await startBackend(t)
  const gateway = await nodeGateway(t, backend.url, { redis: redis.url, nodeId: 'node-z' })
  const other = await nodeGateway(t, backend.url, { redis: redis.url, nodeId: 'node-y' })
  const { ws, id } = await connectWithId(gateway.url)
  const got: string[] = []
  ws.on('message', (data) => got.push(String(data)))
  await until(async () => await other.app.wsGateway.get(id) !== undefined, 'the registration')
  await other.app.wsGateway.send(id, 'fresh')
  await until(() => got.length > 0, 'the message')
  t.same(got, ['fresh'])
})

t.test('an inbox entry for a connection that closed meanwhile is skipped and counted', async (t) => {
  const redis = await startRedis(t)
  const backend = await startBackend(t)
  const gateway = await nodeGateway(t, backend.url, { redis: redis.url, nodeId: 'node-w' })
  const { ws } = await connectWithId(gateway.url, headersFor('erin'))
  const got: string[] = []
  ws.on('message', (data) => got.push(String(data)))
  await redis.admin.xadd('wsg:{node-w}:inbox', '*', 'id', `node-w.${'g'.repeat(16)}`, 'data', 'to the gone', 'bin', '0')
  await redis.admin.xadd('wsg:{node-w}:inbox', '*', 'path', '/ws', 'data', 'to the path', 'bin', '1')
  await until(() => got.length > 0, 'the message')
  t.same(got, ['to the path'])
  t.match(gateway.app.wsGateway.stats().registry, { pushed: 1, skipped: 1 })
  t.same(await gateway.app.wsGateway.sendToUser('erin', Buffer.from('binary'), { binary: true }), { connections: 1 })
})

t.test('Redis down when the gateway starts: it starts, serves local calls, and registers once Redis is up', async (t) => {
  const redis = await startRedis(t)
  await redis.kill()
  const backend = await startBackend(t)
  const gateway = await nodeGateway(t, backend.url, { redis: redis.url, nodeId: 'node-v', nodeTtl: 1000, commandTimeout: 200 })
  const { ws, id } = await connectWithId(gateway.url)
  const got = new Promise((resolve) => ws.once('message', (data) => resolve(String(data))))
  await gateway.app.wsGateway.send(id, 'local, without Redis')
  t.equal(await got, 'local, without Redis')
  await t.rejects(gateway.app.wsGateway.list(), { code: 'FST_WS_GATEWAY_CLUSTER_UNAVAILABLE' })
  t.equal(gateway.app.wsGateway.stats().cluster?.redisUp, false)
  await redis.restart()
  await until(async () => (await gateway.app.wsGateway.list()).items.length === 1, 'the registration')
  t.match((await gateway.app.wsGateway.list()).items, [{ id, node: 'node-v' }], 'registered once Redis answered')
})
