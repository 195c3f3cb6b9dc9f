import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import t from 'tap'
import WebSocket from 'ws'
import type { WsGatewayOptions } from '../lib/index'
import { SECRET, BACKEND_ID, authHeaders, closeOf, sign, connectWithId, headersFor, startBackend, startGateway, type Gateway, type TestLike, until } from './helpers'
import { startRedis, type RedisServer } from './redis-server'

const NODE_TTL = 1000
/** Short where a test waits out a timeout; long elsewhere, so a loaded machine fails nothing. */
const COMMAND_TIMEOUT = 300
const PATIENT = 3000

/** Three gateway instances on one Redis, each in front of the same echo backend. */
async function startCluster (t: TestLike, redis: RedisServer, extra: Partial<WsGatewayOptions> = {}): Promise<Gateway[]> {
  const backend = await startBackend(t)
  const gateways: Gateway[] = []
  for (const nodeId of ['node-a', 'node-b', 'node-c']) {
    gateways.push(await startGateway(t, {
      backends: { [BACKEND_ID]: backend.url },
      jwt: { secret: SECRET },
      heartbeatInterval: 0,
      ...extra,
      cluster: { redis: redis.url, nodeId, nodeTtl: NODE_TTL, commandTimeout: PATIENT, ...extra.cluster }
    }))
  }
  return gateways
}

/** Collects a client's text messages. */
function inbox (ws: WebSocket): string[] {
  const got: string[] = []
  ws.on('message', (data) => got.push(data.toString()))
  return got
}

t.test('every API call reaches connections on other instances, one copy each, in order', async (t) => {
  const redis = await startRedis(t)
  const [a, b, c] = await startCluster(t, redis)
  const onB = await connectWithId(b.url, headersFor('alice'))
  const onC = await connectWithId(c.url, headersFor('alice'))
  const bob = await connectWithId(c.url, headersFor('bob'))
  t.match(onB.id, /^node-b\./)
  const got = { onB: inbox(onB.ws), onC: inbox(onC.ws), bob: inbox(bob.ws) }
  const api = a.app.wsGateway
  await until(async () => (await api.list()).items.length === 3, 'three registered connections')

  t.match(await api.get(onB.id), { id: onB.id, node: 'node-b', sub: 'alice', path: '/ws', backendId: BACKEND_ID })
  for (let i = 0; i < 100; i++) await api.send(onB.id, `m${i}`)
  t.same(await api.sendToUser('alice', 'to alice'), { connections: 2 })
  t.same(await c.app.wsGateway.sendToUser('bob', 'to bob, locally'), { connections: 1 }, 'no other node holds bob')
  t.same(await api.broadcast('to all'), { connections: 3 })
  await until(() => got.onB.length === 102 && got.onC.length === 2 && got.bob.length === 2, 'every message')
  t.same(got.onB, [...Array.from({ length: 100 }, (_, i) => `m${i}`), 'to alice', 'to all'], 'order kept, one copy each')
  t.same(got.onC, ['to alice', 'to all'])
  t.same(got.bob, ['to bob, locally', 'to all'])

  const page1 = await api.list({ limit: 2 })
  const page2 = await api.list({ limit: 2, cursor: page1.cursor })
  t.same([...page1.items, ...page2.items].map((item) => item.id).sort(), [onB.id, onC.id, bob.id].sort())
  t.same((await api.list({ sub: 'alice' })).items.map((item) => item.node).sort(), ['node-b', 'node-c'])

  const bobClosed = closeOf(bob.ws)
  await api.close(bob.id, 4002, 'see you')
  t.same(await bobClosed, { code: 4002, reason: 'see you' })
  const aliceClosed = [closeOf(onB.ws), closeOf(onC.ws)]
  t.same(await api.closeUser('alice', 1008, 'revoked'), { connections: 2 })
  t.same(await Promise.all(aliceClosed), [{ code: 1008, reason: 'revoked' }, { code: 1008, reason: 'revoked' }])
  await until(async () => (await api.list()).items.length === 0, 'an empty registry')
  await t.rejects(api.send(onB.id, 'late'), { code: 'FST_WS_GATEWAY_CONNECTION_GONE', statusCode: 410 })
  t.equal(await api.get(onB.id), undefined)
  t.ok(a.app.wsGateway.stats().cluster?.remoteSends as number >= 104)
})

t.test('a message larger than the remote connection takes is refused, not sent', async (t) => {
  const redis = await startRedis(t)
  const [a, b] = await startCluster(t, redis, { maxPayload: 1000 })
  const { ws, id } = await connectWithId(b.url)
  const got = inbox(ws)
  await until(async () => (await a.app.wsGateway.get(id)) !== undefined, 'the registration')
  await t.rejects(a.app.wsGateway.send(id, Buffer.alloc(1001)), { code: 'FST_WS_GATEWAY_PAYLOAD_TOO_LARGE', statusCode: 413 })
  await a.app.wsGateway.send(id, 'fits')
  await until(() => got.length === 1, 'the message that fits')
  t.same(got, ['fits'])
})

t.test('Redis killed and restarted mid-traffic: resolved sends arrive once, rejected ones never; no client closed', async (t) => {
  const redis = await startRedis(t)
  const [a, b] = await startCluster(t, redis)
  const target = await connectWithId(b.url)
  const local = await connectWithId(a.url)
  const got = inbox(target.ws)
  const gotLocal = inbox(local.ws)
  await until(async () => (await a.app.wsGateway.get(target.id)) !== undefined, 'the registration')
  const resolved: string[] = []
  const rejected: string[] = []
  const codes = new Set<string>()
  let localOk = 0
  const send = async (i: number): Promise<void> => {
    const message = `n${i}`
    try {
      await a.app.wsGateway.send(target.id, message)
      resolved.push(message)
    } catch (err) {
      codes.add((err as { code: string }).code)
      rejected.push(message)
    }
    await a.app.wsGateway.send(local.id, message)
    localOk++
  }
  let i = 0
  for (; i < 50; i++) await send(i)
  await redis.kill()
  const downUntil = Date.now() + 500
  while (Date.now() < downUntil) await send(i++)
  await redis.restart()
  await until(async () => (await a.app.wsGateway.get(target.id)) !== undefined, 'b to register again', NODE_TTL * 3)
  for (const end = i + 50; i < end; i++) await send(i)
  await until(() => got.length >= resolved.length, 'the resolved sends')
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.ok(rejected.length > 0, `${rejected.length} sends were rejected while Redis was down`)
  t.same([...codes], ['FST_WS_GATEWAY_CLUSTER_UNAVAILABLE'], 'every one as unavailable')
  t.same(got, resolved, 'every resolved send arrived exactly once, in order; no rejected one did')
  t.equal(localOk, i, 'a local target was reached throughout')
  t.equal(gotLocal.length, i)
  t.equal(target.ws.readyState, WebSocket.OPEN, 'no client socket was closed')
  t.equal(local.ws.readyState, WebSocket.OPEN)
  t.same((await a.app.wsGateway.list()).items.map((item) => item.id).sort(), [target.id, local.id].sort(), 'the list is whole again')
  t.ok((a.app.wsGateway.stats().cluster?.outages as number) >= 1, 'the outage was counted')
})

t.test('Redis paused: remote calls reject on time, and what they carried is never delivered', async (t) => {
  const redis = await startRedis(t)
  const [a, b] = await startCluster(t, redis, { cluster: { redis: redis.url, commandTimeout: COMMAND_TIMEOUT } })
  const target = await connectWithId(b.url)
  const got = inbox(target.ws)
  await until(async () => (await a.app.wsGateway.get(target.id)) !== undefined, 'the registration')
  await redis.admin.call('CLIENT', 'PAUSE', String(COMMAND_TIMEOUT * 4), 'ALL')
  const started = Date.now()
  await t.rejects(a.app.wsGateway.send(target.id, 'paused'), { code: 'FST_WS_GATEWAY_CLUSTER_UNAVAILABLE', statusCode: 503 })
  const elapsed = Date.now() - started
  t.ok(elapsed < COMMAND_TIMEOUT * 3, `rejected after ${elapsed} ms (commandTimeout ${COMMAND_TIMEOUT})`)
  await t.rejects(a.app.wsGateway.get(target.id), { code: 'FST_WS_GATEWAY_CLUSTER_UNAVAILABLE' })
  await t.rejects(a.app.wsGateway.broadcast('paused too'), { code: 'FST_WS_GATEWAY_CLUSTER_UNAVAILABLE' })
  await new Promise((resolve) => setTimeout(resolve, COMMAND_TIMEOUT * 5))
  await a.app.wsGateway.send(target.id, 'after')
  await until(() => got.length === 1, 'the send after the pause')
  await new Promise((resolve) => setTimeout(resolve, 100))
  t.same(got, ['after'], 'the calls that timed out delivered nothing')
})

t.test('the inbox reader\'s connection killed: nothing is lost', async (t) => {
  const redis = await startRedis(t)
  const [a, b] = await startCluster(t, redis)
  const target = await connectWithId(b.url)
  const got = inbox(target.ws)
  await until(async () => (await a.app.wsGateway.get(target.id)) !== undefined, 'the registration')
  const sent: string[] = []
  for (let round = 0; round < 5; round++) {
    const clients = String(await redis.admin.call('CLIENT', 'LIST')).split('\n')
    const readers = clients.filter((line) => /cmd=xread/.test(line)).map((line) => /id=(\d+)/.exec(line)?.[1] as string)
    for (const id of readers) await redis.admin.call('CLIENT', 'KILL', 'ID', id)
    for (let i = 0; i < 20; i++) {
      const message = `r${round}.${i}`
      await a.app.wsGateway.send(target.id, message)
      sent.push(message)
    }
  }
  await until(() => got.length === sent.length, 'every message')
  t.same(got, sent)
})

t.test('1,000 connections opened and closed and 1,000 refused sends leave Redis as it was', async (t) => {
  const redis = await startRedis(t)
  const [a, b] = await startCluster(t, redis)
  await until(async () => Number(await redis.admin.dbsize()) > 0, 'the nodes to register')
  const baseline = await redis.admin.dbsize()
  const refusals = new Set<string>()
  for (let i = 0; i < 1000; i++) {
    const { ws, id } = await connectWithId(b.url, headersFor(`user-${i % 10}`))
    const closed = closeOf(ws)
    if (i % 100 === 0) await until(async () => (await a.app.wsGateway.get(id)) !== undefined, 'a registration')
    ws.close()
    await closed
    await a.app.wsGateway.send(`node-b.${'x'.repeat(16)}`, 'nobody').catch((err: { code: string }) => refusals.add(err.code))
  }
  t.same([...refusals], ['FST_WS_GATEWAY_CONNECTION_GONE'], 'every send to an unknown id refused 410')
  await until(async () => (await redis.admin.dbsize()) === baseline, 'the key count back at its baseline')
  t.equal(await redis.admin.dbsize(), baseline)
  t.same((await a.app.wsGateway.list()).items, [])
})

t.test('an instance in another process: reached through Redis; SIGKILLed, its connections vanish', async (t) => {
  const redis = await startRedis(t)
  const [a] = await startCluster(t, redis)
  const backend = await startBackend(t)
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/fixtures/cluster-node.ts'], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, _TAPJS_PROCESSINFO_COVERAGE_: '0', REDIS_URL: redis.url, NODE_ID: 'node-x', BACKEND_URL: backend.url, SECRET, NODE_TTL: String(NODE_TTL) }
  })
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  const [line] = await Promise.race([
    once(createInterface({ input: child.stdout as NodeJS.ReadableStream }), 'line') as Promise<[string]>,
    once(child, 'exit').then(() => { throw new Error('the gateway process exited') })
  ])
  const { port } = JSON.parse(line) as { port: number }
  const remote = await connectWithId(`ws://127.0.0.1:${port}/ws`, headersFor('carol'))
  const anonymous = await connectWithId(`ws://127.0.0.1:${port}/ws`, authHeaders({ authorization: `Bearer ${sign({ sub: undefined })}` }))
  t.match(remote.id, /^node-x\./)
  const got = inbox(remote.ws)
  await until(async () => (await a.app.wsGateway.list()).items.length === 2, 'the other process to register both')
  t.equal((await a.app.wsGateway.get(anonymous.id))?.sub, undefined)
  t.same(await a.app.wsGateway.sendToUser('carol', 'across processes'), { connections: 1 })
  await until(() => got.length === 1, 'the message')
  t.same(got, ['across processes'])

  const killedAt = Date.now()
  child.kill('SIGKILL')
  await once(child, 'exit')
  await until(async () => (await a.app.wsGateway.list()).items.length === 0, 'its connections to leave the list', NODE_TTL * 3)
  t.ok(Date.now() - killedAt <= NODE_TTL * 3, 'within nodeTtl and a sweep')
  t.equal(await a.app.wsGateway.get(remote.id), undefined)
  await t.rejects(a.app.wsGateway.send(remote.id, 'to the dead'), { code: 'FST_WS_GATEWAY_CONNECTION_GONE', statusCode: 410 })
  t.same(await a.app.wsGateway.sendToUser('carol', 'nobody left'), { connections: 0 })
  await until(async () => !(await redis.admin.smembers('wsg:nodes')).includes('node-x'), 'the sweep to forget the node')
})

t.test('a reply that waited out a stalled event loop settles the call: a send is never rejected yet delivered', async (t) => {
  const redis = await startRedis(t)
  const [a, b] = await startCluster(t, redis, { cluster: { redis: redis.url, commandTimeout: COMMAND_TIMEOUT } })
  const target = await connectWithId(b.url)
  const got = inbox(target.ws)
  await until(async () => (await a.app.wsGateway.get(target.id)) !== undefined, 'the registration')
  const sending = a.app.wsGateway.send(target.id, 'through a stall').then(() => 'resolved', (err: { code: string }) => err.code)
  // A synchronous stretch longer than commandTimeout: the reply arrives while nothing runs.
  const until_ = Date.now() + COMMAND_TIMEOUT * 4
  while (Date.now() < until_) { /* stalled */ }
  t.equal(await sending, 'resolved', 'the waiting reply wins over the expired timer')
  await until(() => got.length === 1, 'the message')
  t.same(got, ['through a stall'])
})
