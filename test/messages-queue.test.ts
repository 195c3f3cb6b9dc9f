import { setTimeout as sleep } from 'node:timers/promises'
import { Redis } from 'ioredis'
import t from 'tap'
import { createQueueWorker, type QueueRequest } from '../lib/index'
import { ask, connect, startMessageGateway, tokenHeaders, type TestLike } from './helpers'
import { startRedis, type RedisServer } from './redis-server'

/*
 * Queue routes on Redis Streams against a real redis-server of this file's own: requests, worker
 * replies (also across gateway instances), rejections, timeouts with late replies, and outages.
 */

/** An ioredis client for the test's side (workers, inspection), closed at teardown. */
function client (t: TestLike, redis: RedisServer): Redis {
  const made = new Redis(redis.url, { maxRetriesPerRequest: 1 })
  made.on('error', () => {})
  t.teardown(() => made.disconnect())
  return made
}

function worker (t: TestLike, options: Parameters<typeof createQueueWorker>[0]): ReturnType<typeof createQueueWorker> {
  const made = createQueueWorker(options)
  t.teardown(async () => { await made.close() })
  return made
}

t.test('a queue route: the request reaches a worker, its reply reaches the client', async (t) => {
  const redis = await startRedis(t)
  const seen: QueueRequest[] = []
  const reports = worker(t, {
    redis: client(t, redis),
    stream: 'jobs:report',
    group: 'reports',
    handler: async (request) => {
      seen.push(request)
      return { pages: 3, for: request.sub }
    }
  })
  await reports.ready
  const gateway = await startMessageGateway(t, { routes: { 'report.build': { queue: { stream: 'jobs:report', replyTimeout: 5000 } } } }, { cluster: { redis: redis.url, nodeId: 'gw-a', prefix: 'test' } })
  const ws = await connect(gateway.url, tokenHeaders({ sub: 'dana' }))
  t.same(await ask(ws, { action: 'report.build', id: 'q1', year: 2026 }), { type: 'reply', id: 'q1', route: 'report.build', status: 200, data: { pages: 3, for: 'dana' } })
  const [request] = seen
  t.match(request, { route: 'report.build', sub: 'dana', correlationId: 'q1', message: { action: 'report.build', id: 'q1', year: 2026 }, replyTo: 'test:{gw-a}:replies' })
  t.match(request.connectionId, /^gw-a\./)
  t.ok(request.deadline > Date.now() && request.deadline <= Date.now() + 5000)
  t.same(await ask(ws, { action: 'report.build' }), { type: 'reply', id: null, route: 'report.build', status: 200, data: { pages: 3, for: 'dana' } })
  t.equal(seen[1].correlationId, null)
  ws.close()
})

t.test('a worker rejects with a 4xx (its data goes to the client) or fails (BACKEND_ERROR, text withheld)', async (t) => {
  const redis = await startRedis(t)
  const failures: unknown[] = []
  const jobs = worker(t, {
    redis: client(t, redis),
    stream: 'jobs',
    group: 'g',
    onError: (err) => failures.push(err),
    handler: ({ message }) => {
      const { kind } = message as { kind: string }
      if (kind === 'reject') throw Object.assign(new Error('no such year'), { statusCode: 404, data: { year: 1900 } })
      if (kind === 'plain') throw Object.assign(new Error('bad input'), { statusCode: 400 })
      if (kind === 'none') return undefined
      throw new Error('database password hunter2')
    }
  })
  await jobs.ready
  const gateway = await startMessageGateway(t, { routes: { job: { queue: { stream: 'jobs' } } } }, { cluster: { redis: redis.url } })
  const ws = await connect(gateway.url, tokenHeaders())
  t.same(await ask(ws, { action: 'job', kind: 'reject', id: 1 }), {
    type: 'error', id: 1, route: 'job', code: 'FST_WS_GATEWAY_BACKEND_REJECTED', status: 404, message: 'The backend rejected the message', data: { year: 1900 }
  })
  t.match(await ask(ws, { action: 'job', kind: 'plain' }), { code: 'FST_WS_GATEWAY_BACKEND_REJECTED', status: 400, data: { message: 'bad input' } })
  t.same(await ask(ws, { action: 'job', kind: 'none', id: 3 }), { type: 'reply', id: 3, route: 'job', status: 200, data: null })
  const failed = await ask(ws, { action: 'job', kind: 'crash' })
  t.match(failed, { code: 'FST_WS_GATEWAY_BACKEND_ERROR', status: 502 })
  t.notMatch(JSON.stringify(failed), /hunter2/)
  t.match(failures, [{ message: 'database password hunter2' }])
  ws.close()
})

t.test('no reply within replyTimeout is TIMEOUT; the late reply is dropped and counted', async (t) => {
  const redis = await startRedis(t)
  const slow = worker(t, { redis: client(t, redis), stream: 'slow', group: 'g', handler: async () => { await sleep(400); return 'late' } })
  await slow.ready
  const gateway = await startMessageGateway(t, { routes: { slow: { queue: { stream: 'slow', replyTimeout: 100 } } } }, { cluster: { redis: redis.url } })
  const ws = await connect(gateway.url, tokenHeaders())
  t.same(await ask(ws, { action: 'slow', id: 'z' }), { type: 'error', id: 'z', route: 'slow', code: 'FST_WS_GATEWAY_TIMEOUT', status: 504, message: 'The backend did not answer in time' })
  while (gateway.app.wsGateway.stats().messages?.lateReplies === 0) await sleep(20)
  t.match(gateway.app.wsGateway.stats().messages, { lateReplies: 1, errors: { FST_WS_GATEWAY_TIMEOUT: 1 } })
  ws.close()
})

t.test('a worker answers requests that came in on another gateway instance, each to its own inbox', async (t) => {
  const redis = await startRedis(t)
  const answeredBy: string[] = []
  const shared = worker(t, { redis: client(t, redis), stream: 'work', group: 'g', handler: ({ replyTo }) => { answeredBy.push(replyTo); return replyTo } })
  await shared.ready
  const messages = { routes: { work: { queue: { stream: 'work' } } } }
  const a = await startMessageGateway(t, messages, { cluster: { redis: redis.url, nodeId: 'node-a' } })
  const app = client(t, redis)
  const b = await startMessageGateway(t, messages, { cluster: { redis: app, nodeId: 'node-b' } })
  const onA = await connect(a.url, tokenHeaders())
  const onB = await connect(b.url, tokenHeaders())
  const [fromA, fromB] = await Promise.all([ask(onA, { action: 'work', id: 'a' }), ask(onB, { action: 'work', id: 'b' })])
  t.same(fromA, { type: 'reply', id: 'a', route: 'work', status: 200, data: 'wsg:{node-a}:replies' })
  t.same(fromB, { type: 'reply', id: 'b', route: 'work', status: 200, data: 'wsg:{node-b}:replies' })
  t.equal(answeredBy.length, 2)
  onA.close()
  onB.close()
  await b.app.close()
  t.equal(await app.ping(), 'PONG', 'the app\'s own client is left open')
})

t.test('a reply that lands while the inbox connection is down is read once it is back', async (t) => {
  const redis = await startRedis(t)
  const admin = client(t, redis)
  const blip = worker(t, {
    redis: client(t, redis),
    stream: 'blip',
    group: 'g',
    handler: async () => {
      // The inbox readers are the connections blocked in XREAD (the worker's is in XREADGROUP).
      const list = await admin.client('LIST') as string
      for (const line of list.split('\n').filter((l) => / cmd=xread /.test(l))) {
        await admin.client('KILL', 'ID', /id=(\d+)/.exec(line)?.[1] as string)
      }
      return 'survived'
    }
  })
  await blip.ready
  const gateway = await startMessageGateway(t, { routes: { blip: { queue: { stream: 'blip', replyTimeout: 5000 } } } }, { cluster: { redis: redis.url } })
  const ws = await connect(gateway.url, tokenHeaders())
  t.same(await ask(ws, { action: 'blip' }), { type: 'reply', id: null, route: 'blip', status: 200, data: 'survived' })
  ws.close()
})

t.test('Redis down: QUEUE_UNAVAILABLE at once; back up: queue routes work again', async (t) => {
  const redis = await startRedis(t)
  const gateway = await startMessageGateway(t, { routes: { job: { queue: { stream: 'jobs', replyTimeout: 3000 } } } }, { cluster: { redis: redis.url } })
  const ws = await connect(gateway.url, tokenHeaders())
  await redis.kill()
  const started = Date.now()
  t.same(await ask(ws, { action: 'job', id: 'u' }), { type: 'error', id: 'u', route: 'job', code: 'FST_WS_GATEWAY_QUEUE_UNAVAILABLE', status: 503, message: 'The queue is unavailable' })
  t.ok(Date.now() - started < 2500, 'well before the reply timeout')
  await redis.restart()
  const jobs = worker(t, { redis: client(t, redis), stream: 'jobs', group: 'g', handler: () => 'back' })
  await jobs.ready
  let frame = await ask(ws, { action: 'job' })
  for (let i = 0; i < 50 && frame.type === 'error'; i++) {
    await sleep(100)
    frame = await ask(ws, { action: 'job' })
  }
  t.same(frame, { type: 'reply', id: null, route: 'job', status: 200, data: 'back' })
  ws.close()
})

t.test('a gateway whose Redis is unreachable at start still starts, and answers QUEUE_UNAVAILABLE', async (t) => {
  const redis = await startRedis(t)
  await redis.kill()
  const gateway = await startMessageGateway(t, { routes: { job: { queue: { stream: 'jobs' } } } }, { cluster: { redis: { host: '127.0.0.1', port: redis.port }, nodeId: 'n' }, connectTimeout: 200 })
  const ws = await connect(gateway.url, tokenHeaders())
  t.match(await ask(ws, { action: 'job' }), { code: 'FST_WS_GATEWAY_QUEUE_UNAVAILABLE' })
  ws.close()
})

t.test('requests past their deadline are acknowledged without being handled', async (t) => {
  const redis = await startRedis(t)
  const redisClient = client(t, redis)
  const handled: unknown[] = []
  const seen: QueueRequest[] = []
  const skipping = worker(t, { redis: client(t, redis), stream: 'old', group: 'g', handler: (request) => { seen.push(request); handled.push(request.message) } })
  await skipping.ready
  await redisClient.xadd('old', '*', 'request', 'r0', 'replyTo', 'inbox', 'message', '"minimal"', 'deadline', String(Date.now() + 60_000))
  const expired = ['request', 'r1', 'replyTo', 'inbox', 'route', 'x', 'connection', 'c', 'sub', '', 'id', 'null', 'message', '"stale"', 'deadline', String(Date.now() - 1)]
  await redisClient.xadd('old', '*', ...expired)
  await redisClient.xadd('old', '*', 'not', 'a request')
  await redisClient.xadd('old', '*', ...expired.slice(0, -1), String(Date.now() + 60_000))
  while (handled.length < 2) await sleep(20)
  t.same(handled, ['minimal', 'stale'], 'only the live ones')
  t.same({ ...seen[0], deadline: 0 }, { request: 'r0', replyTo: 'inbox', route: '', connectionId: '', sub: undefined, correlationId: null, message: 'minimal', deadline: 0 })
  while (Number((await redisClient.xpending('old', 'g'))[0]) !== 0) await sleep(20)
  t.pass('all four acknowledged')
})

t.test('a stream Redis refuses to append to is QUEUE_UNAVAILABLE; a worker reports what fails under it', async (t) => {
  const redis = await startRedis(t)
  const admin = client(t, redis)
  await admin.set('not-a-stream', 'x')
  const gateway = await startMessageGateway(t, { routes: { bad: { queue: { stream: 'not-a-stream' } } } }, { cluster: { redis: redis.url } })
  const ws = await connect(gateway.url, tokenHeaders())
  t.match(await ask(ws, { action: 'bad' }), { code: 'FST_WS_GATEWAY_QUEUE_UNAVAILABLE', status: 503 })
  ws.close()
  const wrong = createQueueWorker({ redis: client(t, redis), stream: 'not-a-stream', group: 'g', handler: () => null })
  await t.rejects(wrong.ready, /WRONGTYPE/)
  await wrong.close()
  const errors: unknown[] = []
  const orphan = worker(t, { redis: client(t, redis), stream: 'gone', group: 'g', handler: () => null, onError: (err) => errors.push(err) })
  await orphan.ready
  await admin.xgroup('DESTROY', 'gone', 'g')
  await admin.xadd('gone', '*', 'x', 'y')
  while (errors.length === 0) await sleep(20)
  t.match(errors[0], { message: /NOGROUP/ })
})

t.test('the wire format by hand, as a worker in another language would speak it', async (t) => {
  const redis = await startRedis(t)
  const admin = client(t, redis)
  // An earlier run of this node id left a reply behind: it is not read as this run's.
  await admin.xadd('hand:{n1}:replies', '*', 'request', 'from-before', 'status', '200', 'data', '1')
  const gateway = await startMessageGateway(t, { routes: { raw: { queue: { stream: 'raw' } } } }, { cluster: { redis: redis.url, prefix: 'hand', nodeId: 'n1' } })
  // Idle past one blocking read of the inbox: it is sent again.
  await sleep(2_200)
  const ws = await connect(gateway.url, tokenHeaders({ sub: undefined }))
  const answer = ask(ws, { action: 'raw', id: 5 })
  const read = await admin.xread('BLOCK', 5000, 'STREAMS', 'raw', '0') as Array<[string, Array<[string, string[]]>]>
  const fields = read[0][1][0][1]
  const f = Object.fromEntries(fields.flatMap((value, i) => i % 2 === 0 ? [[value, fields[i + 1]]] : []))
  t.match(f, { route: 'raw', sub: '', id: '5', message: '{"action":"raw","id":5}', replyTo: 'hand:{n1}:replies' })
  await admin.xadd(f.replyTo, '*', 'unrelated', 'entry')
  await admin.xadd(f.replyTo, '*', 'request', f.request, 'status', '201')
  t.same(await answer, { type: 'reply', id: 5, route: 'raw', status: 201, data: null }, 'no data field: null')
  t.match(gateway.app.wsGateway.stats().messages, { lateReplies: 1 }, 'the unrelated entry, not the old one')
  ws.close()
})

t.test('an inbox Redis cannot read is retried until it can be; meanwhile QUEUE_UNAVAILABLE', async (t) => {
  const redis = await startRedis(t)
  const admin = client(t, redis)
  await admin.set('wsg:{broken}:replies', 'not a stream')
  const gateway = await startMessageGateway(t, { routes: { job: { queue: { stream: 'jobs' } } } }, { cluster: { redis: redis.url, nodeId: 'broken' }, connectTimeout: 300 })
  const ws = await connect(gateway.url, tokenHeaders())
  t.match(await ask(ws, { action: 'job' }), { code: 'FST_WS_GATEWAY_QUEUE_UNAVAILABLE' })
  await admin.del('wsg:{broken}:replies')
  const jobs = worker(t, { redis: client(t, redis), stream: 'jobs', group: 'g', block: 100, handler: () => 'fixed' })
  await jobs.ready
  await sleep(300)
  let frame = await ask(ws, { action: 'job' })
  for (let i = 0; i < 50 && frame.type === 'error'; i++) {
    await sleep(100)
    frame = await ask(ws, { action: 'job' })
  }
  t.match(frame, { type: 'reply', data: 'fixed' })
  ws.close()
})
