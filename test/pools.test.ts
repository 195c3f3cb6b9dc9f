import t from 'tap'
import type WebSocket from 'ws'
import type { WsGatewayOptions } from '../lib/index'
import { BACKEND_ID, SECRET, authHeaders, connect, deadPort, handshake, headersFor, sign, startGateway, type TestLike } from './helpers'
import { startBlackHole, startReplicas, whoAnswers, whoIs, type Replica } from './pool-helpers'

/** A gateway whose BACKEND_ID is a pool of `urls`. */
async function poolGateway (t: TestLike, backend: Record<string, unknown>, options: Partial<WsGatewayOptions> = {}): Promise<Awaited<ReturnType<typeof startGateway>>> {
  return await startGateway(t, { backends: { [BACKEND_ID]: backend as never }, jwt: { secret: SECRET }, heartbeatInterval: 0, ...options })
}

/** Connects as `sub` and returns the socket and the name of the replica it reached. */
async function connectTo (url: string, sub = 'user-1'): Promise<{ ws: WebSocket, replica: string }> {
  const ws = await connect(url, headersFor(sub))
  return { ws, replica: await whoIs(ws) }
}

const urls = (replicas: Replica[]): string[] => replicas.map((replica) => replica.url)

t.test('round-robin (the default) takes the replicas in turn', async (t) => {
  const replicas = await startReplicas(t, 3)
  const gateway = await poolGateway(t, { urls: urls(replicas) })
  t.same(await whoAnswers(gateway.url, 6), ['a', 'b', 'c', 'a', 'b', 'c'])
})

t.test('least-connections sends a new client to the replica with the fewest open connections', async (t) => {
  const replicas = await startReplicas(t, 3)
  const gateway = await poolGateway(t, { urls: urls(replicas), balance: 'least-connections' })
  const held = [await connectTo(gateway.url), await connectTo(gateway.url), await connectTo(gateway.url)]
  t.same(held.map((c) => c.replica).sort(), ['a', 'b', 'c'], 'three clients spread over three idle replicas')
  const onB = held.find((c) => c.replica === 'b') as { ws: WebSocket }
  onB.ws.close()
  await new Promise((resolve) => onB.ws.once('close', resolve))
  await new Promise((resolve) => setTimeout(resolve, 50)) // the gateway sees the backend leg close
  const next = await connectTo(gateway.url)
  t.equal(next.replica, 'b', 'b is the only replica without a connection')
  for (const c of [...held, next]) c.ws.close()
})

t.test('hash-sub keeps a user on one replica and spreads users', async (t) => {
  const replicas = await startReplicas(t, 3)
  const gateway = await poolGateway(t, { urls: urls(replicas), balance: 'hash-sub' })
  const first = await whoAnswers(gateway.url, 30, (i) => `user-${i}`)
  t.same(await whoAnswers(gateway.url, 30, (i) => `user-${i}`), first, 'every user lands where it landed before')
  t.same([...new Set(first)].sort(), ['a', 'b', 'c'], '30 users use all three replicas')

  // A user whose replica refuses (503) fails over, and comes back once it accepts again.
  const user = first.indexOf('a')
  replicas[0].refuseWith = 503
  t.not((await whoAnswers(gateway.url, 1, () => `user-${user}`))[0], 'a')
  replicas[0].refuseWith = undefined
  t.equal((await whoAnswers(gateway.url, 1, () => `user-${user}`))[0], 'a')

  // A fourth replica takes over some users, each of them from wherever it was: no one else moves.
  const [d] = await startReplicas(t, 1, 3)
  gateway.app.wsGateway.setBackend(BACKEND_ID, { urls: [...urls(replicas), d.url], balance: 'hash-sub' })
  const after = await whoAnswers(gateway.url, 30, (i) => `user-${i}`)
  const moved = after.filter((name, i) => name !== first[i])
  t.ok(moved.length > 0 && moved.length < 30, `some users moved (${moved.length})`)
  t.same([...new Set(moved)], ['d'], 'every user that moved went to the new replica')
})

t.test('hash-sub without a string sub in the token falls back to round-robin', async (t) => {
  const replicas = await startReplicas(t, 2)
  const gateway = await poolGateway(t, { urls: urls(replicas), balance: 'hash-sub' })
  const names: string[] = []
  for (let i = 0; i < 4; i++) {
    const ws = await connect(gateway.url, authHeaders({ authorization: `Bearer ${sign({ sub: 42 })}` }))
    names.push(await whoIs(ws))
    ws.close()
  }
  t.same(names, ['a', 'b', 'a', 'b'])
})

t.test('a pool from resolveBackend keeps its state while the resolver describes the same pool', async (t) => {
  const replicas = await startReplicas(t, 3)
  let pool = urls(replicas).slice(0, 2)
  const gateway = await startGateway(t, { resolveBackend: () => ({ urls: pool }), jwt: { secret: SECRET }, heartbeatInterval: 0 })
  t.same(await whoAnswers(gateway.url, 4), ['a', 'b', 'a', 'b'], 'round-robin turns on from one connection to the next')
  pool = urls(replicas).slice(1)
  t.same(await whoAnswers(gateway.url, 2), ['b', 'c'], 'a different pool starts afresh')
})

t.test('failover: refused, then 5xx, then the replica that accepts', async (t) => {
  const replicas = await startReplicas(t, 2)
  replicas[0].refuseWith = 503
  const gateway = await poolGateway(t, { urls: [`ws://127.0.0.1:${await deadPort()}`, replicas[0].url, replicas[1].url] })
  const { ws, replica } = await connectTo(gateway.url)
  t.equal(replica, 'b')
  t.equal(replicas[0].clientHits, 1, 'the 503 replica was tried once, after the refused one')
  ws.close()
})

t.test('a 4xx is the backend\'s answer: passed through, no other replica tried', async (t) => {
  const replicas = await startReplicas(t, 2)
  replicas[0].refuseWith = 401
  const gateway = await poolGateway(t, { urls: urls(replicas) })
  const res = await handshake(gateway.port, authHeaders())
  t.equal(res.status, 401)
  t.equal(res.body.code, 'FST_WS_GATEWAY_BACKEND_REFUSED')
  t.equal(replicas[1].clientHits, 0)
})

t.test('a replica that hangs gets its share of connectTimeout, then the next one is tried', async (t) => {
  const replicas = await startReplicas(t, 1)
  const gateway = await poolGateway(t, { urls: [await startBlackHole(t), replicas[0].url] }, { connectTimeout: 1000 })
  const { ws, replica } = await connectTo(gateway.url)
  t.equal(replica, 'a')
  ws.close()
})

t.test('502 when no replica accepted, 504 when the last one did not answer in time', async (t) => {
  const refused = await poolGateway(t, { urls: [`ws://127.0.0.1:${await deadPort()}`, `ws://127.0.0.1:${await deadPort()}`] })
  const bad = await handshake(refused.port, authHeaders())
  t.equal(bad.status, 502)
  t.equal(bad.body.code, 'FST_WS_GATEWAY_BAD_GATEWAY')
  const hanging = await poolGateway(t, { urls: [`ws://127.0.0.1:${await deadPort()}`, await startBlackHole(t)] }, { connectTimeout: 300 })
  const slow = await handshake(hanging.port, authHeaders())
  t.equal(slow.status, 504)
  t.equal(slow.body.code, 'FST_WS_GATEWAY_TIMEOUT')
})
