import t from 'tap'
import { Redis } from 'ioredis'
import { Registry } from 'prom-client'
import { announceBackend, type WsGatewayOptions } from '../lib/index'
import { BACKEND_ID, SECRET, connect, connectWithId, headersFor, startGateway, until, type TestLike } from './helpers'
import { scrape, startReplicas, valueOf, whoAnswers, whoIs } from './pool-helpers'
import { startRedis, type RedisServer } from './redis-server'

const NODE_TTL = 1000

/** A gateway of the cluster on `redis` with no backend of its own: it learns them from Redis. */
async function clusterGateway (t: TestLike, redis: RedisServer, nodeId: string, extra: Partial<WsGatewayOptions> = {}): Promise<Awaited<ReturnType<typeof startGateway>>> {
  return await startGateway(t, {
    jwt: { secret: SECRET },
    heartbeatInterval: 0,
    cluster: { redis: redis.url, nodeId, nodeTtl: NODE_TTL, commandTimeout: 2000 },
    ...extra
  })
}

/** Connects until the gateway knows BACKEND_ID (404 until the first announcement is read). */
async function reachable (url: string): Promise<void> {
  await until(async () => await connect(url).then((ws) => { ws.close(); return true }, () => false), 'the announced backend reachable')
}

t.test('backends that announce themselves on Redis join the pool, and leave it when they stop or die', async (t) => {
  const redis = await startRedis(t)
  const [a, b] = await startReplicas(t, 2)
  const gateway = await clusterGateway(t, redis, 'node-a')
  const stopA = await announceBackend({ redis: redis.url, id: BACKEND_ID, url: a.url, ttl: 3000 })
  t.teardown(stopA)
  await reachable(gateway.url)
  t.same(await whoAnswers(gateway.url, 2), ['a', 'a'])

  // b announces through the app's own ioredis instance, which announceBackend leaves open.
  const appRedis = new Redis(redis.url)
  t.teardown(() => appRedis.disconnect())
  const stopB = await announceBackend({ redis: appRedis, id: BACKEND_ID, url: b.url, ttl: 1000 })
  await until(async () => (await whoAnswers(gateway.url, 2)).includes('b'), 'b in the pool')
  t.same((await whoAnswers(gateway.url, 4)).sort(), ['a', 'a', 'b', 'b'], 'round-robin over both')

  const held = await connect(gateway.url)
  const heldOn = await whoIs(held)
  await stopB()
  await stopB()
  t.equal(appRedis.status, 'ready', 'the app\'s client stays open')
  await until(async () => (await whoAnswers(gateway.url, 3)).every((name) => name === 'a'), 'b out of the pool')
  t.pass('a stopped announcement leaves the pool within a poll')
  t.equal(await whoIs(held), heldOn, 'open connections run on')
  held.close()

  // A backend that dies without withdrawing: its last announcement expires after its ttl.
  const dying = new Redis(redis.url)
  dying.on('error', () => {})
  const stopC = await announceBackend({ redis: dying, id: 'Backend_C', url: b.url, ttl: 1000 })
  const toC = async (): Promise<boolean> => await connect(gateway.url, headersFor('x', { id: 'Backend_C' })).then((ws) => { ws.close(); return true }, () => false)
  await until(toC, 'Backend_C reachable')
  dying.disconnect() // its refreshes fail from now on, as when its process is gone
  await until(async () => !(await toC()), 'Backend_C gone')
  t.pass('an expired announcement is dropped, and the ID with it (404)')

  // Only ws:/wss: URLs are taken (announceBackend writes no other; a foreign writer might).
  await redis.admin.sadd('wsg:{backends}:ids', 'Backend_BAD')
  await redis.admin.zadd('wsg:{backends}:Backend_BAD', Date.now() + 60_000, 'http://127.0.0.1:1')
  await until(async () => (await redis.admin.zcard('wsg:{backends}:Backend_BAD')) === 1, 'the foreign announcement written')
  await new Promise((resolve) => setTimeout(resolve, NODE_TTL))
  t.equal(gateway.app.wsGateway.stats().byBackend.Backend_BAD, undefined)
  t.notOk(await connect(gateway.url, headersFor('x', { id: 'Backend_BAD' })).then(() => true, () => false), 'an ID with no usable URL stays unknown')
  await stopC()
})

t.test('a Redis outage keeps the announced pools; announceBackend reports failed refreshes', async (t) => {
  const redis = await startRedis(t)
  const [a] = await startReplicas(t, 1)
  const gateway = await clusterGateway(t, redis, 'node-a')
  const errors: Error[] = []
  const stop = await announceBackend({ redis: redis.url, id: BACKEND_ID, url: a.url, ttl: 1000, onError: (err) => errors.push(err) })
  t.teardown(stop)
  await reachable(gateway.url)
  await redis.kill()
  await until(() => errors.length > 0, 'a failed refresh reported')
  const late = await announceBackend({ redis: redis.url, id: 'Backend_LATE', url: a.url, ttl: 1000, onError: (err) => errors.push(err) })
  t.teardown(late)
  t.pass('a backend may start while Redis is down: announceBackend resolves, its failures go to onError')
  await new Promise((resolve) => setTimeout(resolve, NODE_TTL))
  t.same(await whoAnswers(gateway.url, 1), ['a'], 'the gateway still reaches a')
  await redis.restart()
  await until(async () => (await redis.admin.zcard(`wsg:{backends}:${BACKEND_ID}`).catch(() => 0)) === 1 &&
    (await redis.admin.zcard('wsg:{backends}:Backend_LATE').catch(() => 0)) === 1, 'both announcements written again')
  t.pass('the announcements are written once Redis is back')
})

t.test('cluster metrics: Redis up, outages, remote sends, inbox handled and lag', async (t) => {
  const redis = await startRedis(t)
  const registry = new Registry()
  const stop = await announceBackend({ redis: redis.url, id: BACKEND_ID, url: (await startReplicas(t, 1))[0].url })
  t.teardown(stop)
  const a = await clusterGateway(t, redis, 'node-a', { metrics: { registry } })
  const b = await clusterGateway(t, redis, 'node-b')
  await reachable(b.url)
  const client = await connectWithId(b.url)
  const got = new Promise((resolve) => client.ws.once('message', resolve))
  await until(async () => await a.app.wsGateway.get(client.id) !== undefined, 'the connection registered')
  await a.app.wsGateway.send(client.id, 'from a')
  await got
  let samples = await scrape(registry)
  t.equal(valueOf(samples, 'ws_gateway_cluster_redis_up', { node: 'node-a' }), 1)
  t.equal(valueOf(samples, 'ws_gateway_cluster_remote_sends_total', { node: 'node-a' }), 1)
  t.equal(valueOf(samples, 'ws_gateway_cluster_outages_total', { node: 'node-a' }), 0)
  const bStats = b.app.wsGateway.stats().cluster
  t.equal(bStats?.inboxHandled, 1, 'b handled the send')
  t.ok((bStats?.inboxLagMs ?? -1) >= 0, 'with a lag of zero or more ms')
  client.ws.close()
  await redis.kill()
  await until(async () => valueOf(await scrape(registry), 'ws_gateway_cluster_redis_up', { node: 'node-a' }) === 0, 'Redis seen down')
  samples = await scrape(registry)
  t.equal(valueOf(samples, 'ws_gateway_cluster_outages_total', { node: 'node-a' }), 1)
})

t.test('announceBackend refuses bad options with their name', async (t) => {
  const cases: Array<[unknown, RegExp]> = [
    [undefined, /announceBackend needs an options object/],
    [{ redis: 'redis://h', id: 'A', url: 'ws://h', extra: 1 }, /unknown option "announceBackend.extra"/],
    [{ redis: 'http://h', id: 'A', url: 'ws://h' }, /announceBackend.redis must be a redis: URL/],
    [{ redis: 'redis://h', id: 'a b', url: 'ws://h' }, /announceBackend.id must match/],
    [{ redis: 'redis://h', id: 'A', url: 'http://h' }, /announceBackend.url must be a ws: or wss: URL/],
    [{ redis: 'redis://h', id: 'A', url: 'ws://h', ttl: 10 }, /announceBackend.ttl must be an integer >= 1000/],
    [{ redis: 'redis://h', id: 'A', url: 'ws://h', prefix: 'a b' }, /announceBackend.prefix must match/],
    [{ redis: 'redis://h', id: 'A', url: 'ws://h', onError: 1 }, /announceBackend.onError must be a function/]
  ]
  for (const [options, message] of cases) {
    await t.rejects(announceBackend(options as never), { code: 'FST_WS_GATEWAY_INVALID_OPTION', message }, String(message))
  }
})
