import { once } from 'node:events'
import https from 'node:https'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { WebSocketServer } from 'ws'
import type { RelayEngine } from '../lib/options/types'
import { createCertificate } from '../example/tls'
import { Registry } from 'prom-client'
import { BACKEND_ID, SECRET, authHeaders, closeOf, connect, handshake, startGateway, until, type TestLike } from './helpers'
import { scrape, valueOf } from './pool-helpers'

/** A wss: echo backend with a throw-away certificate for 127.0.0.1; `GET /healthz` answers `health.status`. */
async function startTlsBackend (t: TestLike): Promise<{ url: string, ca: string, health: { status: number } }> {
  const { cert, key } = await createCertificate()
  const health = { status: 200 }
  const server = https.createServer({ cert, key }, (req, res) => res.writeHead(req.url === '/healthz' ? health.status : 404).end())
  const wss = new WebSocketServer({ server, perMessageDeflate: false })
  wss.on('connection', (ws) => ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary })))
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => { for (const ws of wss.clients) ws.terminate(); server.close() })
  return { url: `wss://127.0.0.1:${(server.address() as AddressInfo).port}`, ca: cert, health }
}

t.test('an HTTP probe of a wss: endpoint goes over TLS with the backend\'s ca', async (t) => {
  const backend = await startTlsBackend(t)
  backend.health.status = 503
  const registry = new Registry()
  await startGateway(t, {
    backends: { [BACKEND_ID]: { urls: [backend.url], ca: backend.ca, health: { failures: 1 }, probe: { interval: 30, httpPath: '/healthz' } } },
    jwt: { secret: SECRET },
    metrics: { registry }
  })
  const endpoints = async (state: string): Promise<number> => valueOf(await scrape(registry), 'ws_gateway_endpoints', { backend: BACKEND_ID, state })
  await until(async () => await endpoints('ejected') === 1, 'the endpoint ejected')
  backend.health.status = 200
  await until(async () => await endpoints('healthy') === 1, 'the endpoint healthy again')
  t.pass('503 ejected it, 200 over a trusted TLS connection brought it back')
})

for (const engine of ['passthrough', 'ws'] as RelayEngine[]) {
  t.test(`${engine} engine: a wss: backend, trusted through its ca option`, async (t) => {
    const backend = await startTlsBackend(t)
    const gateway = await startGateway(t, { backends: { [BACKEND_ID]: { url: backend.url, ca: backend.ca } }, jwt: { secret: SECRET }, engine })
    const ws = await connect(gateway.url)
    const big = Buffer.alloc(200_000, 9)
    ws.send('over tls')
    ws.send(big)
    const got: Array<[number, boolean]> = []
    await new Promise<void>((resolve) => ws.on('message', (data: Buffer, isBinary: boolean) => { got.push([data.length, isBinary]); if (got.length === 2) resolve() }))
    t.same(got, [[8, false], [big.length, true]])
    ws.close(4001, 'tls bye')
    t.same(await closeOf(ws), { code: 4001, reason: 'tls bye' })
  })
}

t.test('a wss: backend whose certificate is not trusted is a 502', async (t) => {
  const backend = await startTlsBackend(t)
  const gateway = await startGateway(t, { backends: { [BACKEND_ID]: backend.url }, jwt: { secret: SECRET } })
  const res = await handshake(gateway.port, authHeaders())
  t.equal(res.status, 502)
  t.equal(res.body.code, 'FST_WS_GATEWAY_BAD_GATEWAY')
})
