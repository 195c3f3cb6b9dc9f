import t from 'tap'
import WebSocket from 'ws'
import type { RelayEngine } from '../lib/options/types'
import { BACKEND_ID, authHeaders, closeOf, connect, handshake, nextMessage, sign, startBackend, startGateway, startPair, until, SECRET } from './helpers'

t.test('maxConnectionsPerIp: 429 with Retry-After, and the slot comes back on close', async (t) => {
  const { gateway } = await startPair(t, { maxConnectionsPerIp: 2, retryAfter: 7 })
  const first = await connect(gateway.url)
  const second = await connect(gateway.url)
  const refused = await handshake(gateway.port, authHeaders())
  t.equal(refused.status, 429)
  t.equal(refused.body.code, 'FST_WS_GATEWAY_TOO_MANY_CONNECTIONS')
  t.equal(refused.headers['retry-after'], '7')
  first.close()
  await closeOf(first)
  await new Promise((resolve) => setTimeout(resolve, 20))
  const third = await connect(gateway.url)
  third.close()
  second.close()
})

t.test('maxConnectionsPerSubject counts by the token\'s sub', async (t) => {
  const { gateway } = await startPair(t, { maxConnectionsPerSubject: 1 })
  const alice = await connect(gateway.url, { id: BACKEND_ID, authorization: `Bearer ${sign({ sub: 'alice' })}` })
  const again = await handshake(gateway.port, { id: BACKEND_ID, authorization: `Bearer ${sign({ sub: 'alice' })}` })
  t.equal(again.status, 429)
  t.equal(again.headers['retry-after'], '5')
  const bob = await connect(gateway.url, { id: BACKEND_ID, authorization: `Bearer ${sign({ sub: 'bob' })}` })
  alice.close()
  bob.close()
})

t.test('maxConnections: 503 with Retry-After, counting upgrades still connecting', async (t) => {
  const { gateway } = await startPair(t, { maxConnections: 1 })
  const first = await connect(gateway.url)
  const refused = await handshake(gateway.port, authHeaders())
  t.equal(refused.status, 503)
  t.equal(refused.body.code, 'FST_WS_GATEWAY_AT_CAPACITY')
  t.equal(refused.headers['retry-after'], '5')
  first.close()
})

t.test('a refused handshake gives its slot back', async (t) => {
  const { gateway } = await startPair(t, { maxConnectionsPerIp: 1 })
  for (let i = 0; i < 3; i++) {
    const res = await handshake(gateway.port, { id: 'Unknown_ID', authorization: `Bearer ${sign()}` })
    t.equal(res.status, 404)
  }
  await new Promise((resolve) => setTimeout(resolve, 20))
  const ws = await connect(gateway.url)
  ws.close()
})

t.test('drain: close frames spread over drainTimeout, with the configured code', async (t) => {
  const { gateway, backend } = await startPair(t, { drainTimeout: 400, shutdownCloseCode: 1012 })
  const clients = await Promise.all([1, 2, 3, 4].map(async () => await connect(gateway.url)))
  const start = Date.now()
  const closes = clients.map(async (ws) => { const c = await closeOf(ws); return { ...c, at: Date.now() - start } })
  const backendCloses = backend.sockets.map(async (ws) => await closeOf(ws))
  await gateway.app.close()
  const results = await Promise.all(closes)
  for (const r of results) t.equal(r.code, 1012)
  for (const r of await Promise.all(backendCloses)) t.equal(r.code, 1012)
  const times = results.map((r) => r.at).sort((a, b) => a - b)
  t.ok(times[3] - times[0] >= 250, `spread over ${times[3] - times[0]} ms`)
})

t.test('upgrades during the drain get 503 with Retry-After when Fastify lets the gateway answer', async (t) => {
  const backend = await startBackend(t)
  const gateway = await startGateway(t, { backends: { [BACKEND_ID]: backend.url }, jwt: { secret: SECRET }, drainTimeout: 0, closeTimeout: 300 }, { return503OnClosing: false })
  const stuck = await handshake(gateway.port, authHeaders())
  stuck.socket?.resume()
  const closing = gateway.app.close()
  await new Promise((resolve) => setTimeout(resolve, 30))
  const late = await handshake(gateway.port, authHeaders())
  t.equal(late.status, 503)
  t.equal(late.body.code, 'FST_WS_GATEWAY_SHUTTING_DOWN')
  t.equal(late.headers['retry-after'], '5')
  await closing
})

t.test('a connection is closed 1008 when its token expires', async (t) => {
  const { gateway, backend } = await startPair(t, { clockTolerance: 0 })
  const ws = await connect(gateway.url, { id: BACKEND_ID, authorization: `Bearer ${sign({}, { expiresIn: 1 })}` })
  const backendClosed = closeOf(backend.sockets[0])
  const started = Date.now()
  t.same(await closeOf(ws), { code: 1008, reason: 'token expired' })
  t.equal((await backendClosed).code, 1001)
  t.ok(Date.now() - started < 2500, 'closed around exp')
})

t.test('closeOnTokenExpiry: false keeps the connection past exp', async (t) => {
  const { gateway } = await startPair(t, { closeOnTokenExpiry: false, clockTolerance: 10 })
  const ws = await connect(gateway.url, { id: BACKEND_ID, authorization: `Bearer ${sign({}, { expiresIn: 1 })}` })
  await new Promise((resolve) => setTimeout(resolve, 1500))
  ws.send('still')
  t.equal((await nextMessage(ws)).data.toString(), 'still')
  ws.close()
})

t.test('a token valid for longer than a timer can wait keeps its connection', async (t) => {
  const { gateway } = await startPair(t)
  const ws = await connect(gateway.url, { id: BACKEND_ID, authorization: `Bearer ${sign({}, { expiresIn: 60 * 60 * 24 * 30 })}` })
  ws.send('ok')
  t.equal((await nextMessage(ws)).data.toString(), 'ok')
  ws.close()
})

for (const engine of ['passthrough', 'ws'] as RelayEngine[]) {
  t.test(`${engine} engine`, async (t) => {
    t.test('rate limit: over the message rate the client is closed 1008', async (t) => {
      const { gateway, backend } = await startPair(t, { engine, rateLimit: { messagesPerSecond: 10 } })
      const ws = await connect(gateway.url)
      const backendClosed = closeOf(backend.sockets[0])
      for (let i = 0; i < 30; i++) ws.send('x')
      t.same(await closeOf(ws), { code: 1008, reason: 'rate limit' })
      t.equal((await backendClosed).code, 1001)
    })

    t.test('rate limit: a fragmented message counts as one message, its fragments\' bytes all count', async (t) => {
      const received: string[] = []
      const { gateway, backend } = await startPair(t, { engine, rateLimit: { messagesPerSecond: 2, bytesPerSecond: 100 } }, {
        onConnection: (ws) => ws.on('message', (data: Buffer) => received.push(data.toString()))
      })
      const ws = await connect(gateway.url)
      for (const part of ['one ', 'message ', 'in ', 'five ']) ws.send(part, { fin: false })
      ws.send('fragments')
      ws.send('two')
      await until(() => received.length === 2, 'both messages at the backend')
      t.same(received, ['one message in five fragments', 'two'])
      const backendClosed = closeOf(backend.sockets[0])
      ws.send('x'.repeat(50), { fin: false })
      ws.send('x'.repeat(50))
      t.same(await closeOf(ws), { code: 1008, reason: 'rate limit' }, 'a third message, or 100 more bytes, is over')
      t.equal((await backendClosed).code, 1001)
    })

    t.test('rate limit: over the byte rate, with drop, messages are dropped and counted', async (t) => {
      let received = 0
      const { gateway } = await startPair(t, { engine, rateLimit: { bytesPerSecond: 1000, onExceeded: 'drop' } }, {
        onConnection: (ws) => ws.on('message', () => { received++ })
      })
      const ws = await connect(gateway.url)
      for (let i = 0; i < 20; i++) ws.send(Buffer.alloc(100))
      ws.send('sync')
      await new Promise((resolve) => setTimeout(resolve, 200))
      t.ok(received >= 10 && received <= 14, `${received} of 21 passed (a second's worth, 10 × 100 B, plus what refilled meanwhile)`)
      t.equal(gateway.app.wsGateway.stats().dropped, 21 - received)
      t.equal(ws.readyState, WebSocket.OPEN)
      ws.close()
    })

    t.test('a slow consumer is closed after slowConsumerTimeout with the configured code', async (t) => {
      const { gateway, backend } = await startPair(t, { engine, highWaterMark: 64 * 1024, slowConsumerTimeout: 1000, slowConsumerCloseCode: 1013 })
      const ws = await connect(gateway.url)
      ws.pause()
      const server = backend.sockets[0]
      const backendClosed = closeOf(server)
      const chunk = Buffer.alloc(64 * 1024)
      for (let i = 0; i < 400; i++) server.send(chunk)
      t.equal((await backendClosed).code, 1001, 'the backend is told the client went away')
      ws.resume()
      const { code, reason } = await closeOf(ws)
      t.equal(code, 1013)
      t.equal(reason, 'slow consumer')
    })

    t.test('a client that never reads is a slow consumer even while the backend leg drains the other way', async (t) => {
      const { gateway, backend } = await startPair(t, { engine, highWaterMark: 64 * 1024, slowConsumerTimeout: 1000, slowConsumerCloseCode: 1013 }, {
        onConnection: (ws) => {
          // The backend floods a client that never reads, and reads what the client sends only
          // after a while: the client leg is paused, then drains, while the backend leg stays paused.
          ws.pause()
          setTimeout(() => ws.resume(), 200)
          const chunk = Buffer.alloc(64 * 1024)
          for (let i = 0; i < 400; i++) ws.send(chunk)
        }
      })
      const ws = await connect(gateway.url)
      ws.pause()
      const backendClosed = closeOf(backend.sockets[0])
      const chunk = Buffer.alloc(64 * 1024)
      for (let i = 0; i < 400; i++) ws.send(chunk)
      const closed = await Promise.race([backendClosed, new Promise((resolve) => setTimeout(resolve, 10_000, 'still open after 10 s'))])
      t.same(closed, { code: 1001, reason: 'going away' }, 'the backend is told the client went away')
      ws.resume()
      let close: { code: number, reason: string } | undefined
      ws.on('close', (code: number, reason: Buffer) => { close = { code, reason: reason.toString() } })
      await until(() => close !== undefined, 'the client\'s close', 30_000)
      t.same(close, { code: 1013, reason: 'slow consumer' })
    })

    t.test('a client that catches up in time is not a slow consumer', async (t) => {
      const { gateway, backend } = await startPair(t, { engine, highWaterMark: 64 * 1024, slowConsumerTimeout: 1000 })
      const ws = await connect(gateway.url)
      ws.pause()
      const server = backend.sockets[0]
      const chunk = Buffer.alloc(64 * 1024)
      for (let i = 0; i < 200; i++) server.send(chunk)
      await new Promise((resolve) => setTimeout(resolve, 300))
      let received = 0
      const all = new Promise<void>((resolve) => ws.on('message', () => { if (++received === 200) resolve() }))
      ws.resume()
      await all
      await new Promise((resolve) => setTimeout(resolve, 1000))
      t.equal(ws.readyState, WebSocket.OPEN)
      ws.close()
    })
  })
}
