import { once } from 'node:events'
import net from 'node:net'
import t from 'tap'
import WebSocket from 'ws'
import type { RelayEngine } from '../lib/options/types'
import { BACKEND_ID, SECRET, authHeaders, closeOf, connect, handshake, sign, startBackend, startGateway, startPair } from './helpers'

/** Sends raw bytes as a request and returns what the server answered before closing. */
async function rawRequest (port: number, request: string): Promise<string> {
  const socket = net.connect(port, '127.0.0.1')
  socket.write(request)
  let answer = ''
  socket.on('data', (chunk) => { answer += chunk.toString() })
  socket.on('error', () => {})
  await once(socket, 'close')
  return answer
}

t.test('CR/LF smuggled into a header is refused by the HTTP parser with 400', async (t) => {
  const { gateway, backend } = await startPair(t)
  const answer = await rawRequest(gateway.port, [
    'GET /ws HTTP/1.1', 'Host: x', 'Connection: Upgrade', 'Upgrade: websocket', 'Sec-WebSocket-Version: 13',
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==', `Authorization: Bearer ${sign()}`, `id: ${BACKEND_ID}`,
    ' x-injected: folded', '', ''
  ].join('\r\n'))
  t.match(answer, /^HTTP\/1\.1 400/)
  t.equal(backend.sockets.length, 0)
})

t.test('oversized headers are refused with 431', async (t) => {
  const { gateway } = await startPair(t)
  const res = await handshake(gateway.port, authHeaders({ 'x-big': 'x'.repeat(20_000) }))
  t.equal(res.status, 431)
})

t.test('a stalled handshake is dropped by Fastify\'s connectionTimeout', async (t) => {
  const backend = await startBackend(t)
  const gateway = await startGateway(t, { backends: { [BACKEND_ID]: backend.url }, jwt: { secret: SECRET } }, { connectionTimeout: 300 })
  const socket = net.connect(gateway.port, '127.0.0.1')
  socket.on('error', () => {})
  socket.write('GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n')
  const started = Date.now()
  await once(socket, 'close')
  t.ok(Date.now() - started < 2000, `dropped after ${Date.now() - started} ms`)
})

t.test('a backend killed mid-stream closes every client with 1014 within a second', async (t) => {
  const { gateway, backend } = await startPair(t)
  const clients = await Promise.all(Array.from({ length: 20 }, async () => await connect(gateway.url)))
  for (const ws of clients) ws.send('traffic')
  const closes = clients.map(async (ws) => await closeOf(ws))
  const started = Date.now()
  for (const ws of backend.wss.clients) ws.terminate()
  const results = await Promise.all(closes)
  t.ok(Date.now() - started < 1000, `all closed in ${Date.now() - started} ms`)
  t.same(new Set(results.map((r) => `${r.code} ${r.reason}`)), new Set(['1014 bad gateway']))
})

t.test('1,000 clients connecting at once are all relayed', async (t) => {
  const { gateway, backend } = await startPair(t, { maxConnectionsPerIp: 0, maxConnectionsPerSubject: 0 })
  const count = 1000
  const clients = await Promise.all(Array.from({ length: count }, async () => await connect(gateway.url)))
  t.equal(backend.sockets.length, count)
  t.equal(gateway.app.wsGateway.stats().open, count)
  const echoes = await Promise.all(clients.map(async (ws, i) => {
    ws.send(`hello ${i}`)
    const [data] = await once(ws, 'message') as [Buffer]
    return data.toString() === `hello ${i}`
  }))
  t.equal(echoes.filter(Boolean).length, count)
  await Promise.all(clients.map(async (ws) => { ws.close(); await once(ws, 'close') }))
})

t.test('fastify.close() during traffic: every client gets 1001 and no accepted message is lost', async (t) => {
  const received = new Map<number, number>()
  const { gateway } = await startPair(t, { drainTimeout: 200 }, {
    onConnection: (ws, req) => {
      const n = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('n'))
      ws.on('message', () => received.set(n, (received.get(n) ?? 0) + 1))
    }
  })
  const clients = await Promise.all(Array.from({ length: 20 }, async (_, n) => await connect(`${gateway.url}?n=${n}`)))
  const sent = new Array<number>(clients.length).fill(0)
  const closes = clients.map(async (ws) => await closeOf(ws))
  // Each client keeps sending until it sees the close; what it sent before is what must arrive.
  const pumps = clients.map(async (ws, n) => {
    while (ws.readyState === WebSocket.OPEN) {
      ws.send(`m${sent[n]++}`)
      await new Promise((resolve) => setImmediate(resolve))
    }
  })
  await new Promise((resolve) => setTimeout(resolve, 100))
  await gateway.app.close()
  await Promise.all(pumps)
  for (const close of await Promise.all(closes)) t.equal(close.code, 1001)
  const lost = clients.reduce((sum, _ws, n) => sum + sent[n] - (received.get(n) ?? 0), 0)
  t.equal(lost, 0, `messages lost: ${lost} of ${sent.reduce((a, b) => a + b, 0)}`)
})

for (const engine of ['passthrough', 'ws'] as RelayEngine[]) {
  t.test(`${engine} engine: invalid UTF-8 in a client text message closes the client 1007`, async (t) => {
    const { gateway } = await startPair(t, { engine })
    const ws = await connect(gateway.url)
    // ws does not check what it sends: this is a text frame with invalid UTF-8 on the wire.
    ws.send(Buffer.from([0x68, 0xff, 0xfe]), { binary: false })
    t.equal((await closeOf(ws)).code, 1007)
  })
}
