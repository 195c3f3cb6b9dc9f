import http from 'node:http'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { Registry } from 'prom-client'
import { Health } from '../lib/upstream/health'
import { BACKEND_ID, SECRET, authHeaders, deadPort, handshake, startGateway, until } from './helpers'
import { scrape, startBlackHole, startReplicas, valueOf, type Replica } from './pool-helpers'
import type { WsGatewayOptions } from '../lib/index'

const sleep = async (ms: number): Promise<void> => await new Promise((resolve) => setTimeout(resolve, ms))

/** A gateway with metrics in its own registry, BACKEND_ID a pool of the replicas. */
async function watchedPool (t: Parameters<typeof startGateway>[0], replicas: Replica[], backend: Record<string, unknown>): Promise<{ port: number, registry: Registry }> {
  const registry = new Registry()
  const options: WsGatewayOptions = {
    backends: { [BACKEND_ID]: { urls: replicas.map((replica) => replica.url), ...backend } },
    jwt: { secret: SECRET },
    heartbeatInterval: 0,
    metrics: { registry }
  }
  const { port } = await startGateway(t, options)
  return { port, registry }
}

/** Opens and drops one client connection; returns its handshake status. */
async function visit (port: number): Promise<number> {
  const res = await handshake(port, authHeaders())
  res.socket?.destroy()
  return res.status
}

async function endpoints (registry: Registry, state: string): Promise<number> {
  return valueOf(await scrape(registry), 'ws_gateway_endpoints', { backend: BACKEND_ID, state })
}

t.test('consecutive failures eject a replica; after ejectTime it returns on probation, and a success restores it', async (t) => {
  const replicas = await startReplicas(t, 2)
  replicas[0].refuseWith = 503
  const { port, registry } = await watchedPool(t, replicas, { health: { failures: 2, ejectTime: 300 } })
  for (let i = 0; i < 3; i++) t.equal(await visit(port), 101, 'every client gets in, through b')
  t.equal(replicas[0].clientHits, 2, 'a was tried twice (turns 1 and 3), then ejected')
  t.equal(await endpoints(registry, 'ejected'), 1)
  for (let i = 0; i < 4; i++) await visit(port)
  t.equal(replicas[0].clientHits, 2, 'an ejected replica is not tried')
  t.equal(valueOf(await scrape(registry), 'ws_gateway_endpoint_ejections_total', { backend: BACKEND_ID }), 1)

  replicas[0].refuseWith = undefined
  await sleep(350)
  t.equal(await endpoints(registry, 'probation'), 1, 'back on probation once ejectTime is over')
  await visit(port)
  await visit(port)
  t.equal(replicas[0].clientHits, 3, 'a took a connection again')
  t.equal(await endpoints(registry, 'healthy'), 2, 'one success on probation restores it')
})

t.test('an ejection grows while the endpoint keeps failing, and resets once it recovers', async (t) => {
  let ejections = 0
  const health = new Health({ failures: 1, ejectTime: 200, maxEjectTime: 300 }, () => ejections++)
  health.failure()
  t.equal(health.state, 'ejected')
  health.failure()
  t.equal(ejections, 1, 'a failure while ejected changes nothing')
  await sleep(220)
  t.equal(health.state, 'probation')
  health.failure()
  t.equal(health.state, 'ejected', 'one failure on probation ejects again')
  await sleep(220)
  t.equal(health.state, 'ejected', 'for longer: 2 × 200 ms, capped at maxEjectTime 300 ms')
  await sleep(100)
  t.equal(health.state, 'probation')
  health.success()
  t.equal(health.state, 'healthy')
  health.failure()
  await sleep(220)
  t.equal(health.state, 'probation', 'after a recovery the next ejection is the short one again')
  health.success()
  t.equal(health.state, 'healthy')

  const never = new Health(false, () => ejections++)
  for (let i = 0; i < 10; i++) never.failure()
  t.equal(never.state, 'healthy', 'health: false never ejects')
  const early = new Health({ failures: 1, ejectTime: 60_000, maxEjectTime: 60_000 }, () => {})
  early.failure()
  early.success()
  t.equal(early.state, 'probation', 'a success while ejected (a probe) ends the ejection, on probation')
})

t.test('when every replica is ejected they are all tried anyway', async (t) => {
  const replicas = await startReplicas(t, 2)
  replicas[0].refuseWith = 503
  replicas[1].refuseWith = 503
  const { port, registry } = await watchedPool(t, replicas, { health: { failures: 1, ejectTime: 60_000 } })
  t.equal(await visit(port), 502)
  t.equal(await endpoints(registry, 'ejected'), 2)
  replicas[1].refuseWith = undefined
  t.equal(await visit(port), 101, 'b recovered and was found although ejected')
})

t.test('active WebSocket probes eject a failing replica before any client meets it, and bring it back', async (t) => {
  const replicas = await startReplicas(t, 2)
  replicas[0].refuseWith = 503
  const dead = { url: `ws://127.0.0.1:${await deadPort()}` } as Replica
  const { port, registry } = await watchedPool(t, [...replicas, dead], { health: { failures: 1, ejectTime: 60_000 }, probe: { interval: 30, timeout: 500 } })
  await until(async () => await endpoints(registry, 'ejected') === 2, 'the probes to eject a and the dead port')
  for (let i = 0; i < 4; i++) t.equal(await visit(port), 101)
  t.equal(replicas[0].clientHits, 0, 'no client was sent to a (503) nor to the dead port')
  replicas[0].refuseWith = 401
  await until(async () => await endpoints(registry, 'healthy') === 2, 'a back to healthy')
  t.pass('probes brought a back long before the 60 s ejection ended: a 4xx is an answer, so a live backend')
})

t.test('active HTTP probes: 2xx is healthy; 5xx and no answer within the timeout are not', async (t) => {
  let status = 500
  const server = http.createServer((req, res) => res.writeHead(req.url === '/healthz' ? status : 404).end())
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => server.close())
  const registry = new Registry()
  await startGateway(t, {
    backends: {
      [BACKEND_ID]: {
        urls: [`ws://127.0.0.1:${(server.address() as AddressInfo).port}`, await startBlackHole(t)],
        health: { failures: 1, ejectTime: 60_000 },
        probe: { interval: 30, timeout: 100, httpPath: '/healthz' }
      }
    },
    jwt: { secret: SECRET },
    metrics: { registry }
  })
  await until(async () => await endpoints(registry, 'ejected') === 2, 'both endpoints ejected')
  status = 200
  await until(async () => await endpoints(registry, 'healthy') === 1, 'the HTTP-probed endpoint healthy')
  t.equal(await endpoints(registry, 'ejected'), 1, 'the silent one stays out')
})
