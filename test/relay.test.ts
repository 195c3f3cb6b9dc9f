import { once } from 'node:events'
import t from 'tap'
import WebSocket from 'ws'
import type { RelayEngine } from '../lib/options/types'
import { BACKEND_ID, SECRET, authHeaders, closeOf, connect, nextMessage, startBackend, startGateway, startPair, until } from './helpers'

// The behaviour below is the contract of a relay: every engine must pass all of it.
for (const engine of ['passthrough', 'ws'] as RelayEngine[]) {
  t.test(`${engine} engine`, async (t) => {
    t.test('text stays text and binary stays binary, in order, both ways', async (t) => {
      const { gateway } = await startPair(t, { engine })
      const ws = await connect(gateway.url)
      const sent: Array<[Buffer, boolean]> = [
        [Buffer.from('hello'), false],
        [Buffer.from([0, 1, 2, 255]), true],
        [Buffer.alloc(0), false],
        [Buffer.alloc(0), true],
        [Buffer.from('héllo wörld ✓'), false],
        [Buffer.alloc(70_000, 1), true]
      ]
      const received: Array<[Buffer, boolean]> = []
      ws.on('message', (data: Buffer, isBinary: boolean) => received.push([data, isBinary]))
      for (const [data, binary] of sent) ws.send(data, { binary })
      await until(() => received.length === sent.length, 'every message back')
      t.same(received.map(([d, b]) => [d.toString('hex'), b]), sent.map(([d, b]) => [d.toString('hex'), b]))
      ws.close(1000)
      t.equal((await closeOf(ws)).code, 1000)
    })

    t.test('frames the backend sends the instant it opens are not lost', async (t) => {
      const { gateway } = await startPair(t, { engine }, {
        onConnection: (ws) => { for (let i = 0; i < 5; i++) ws.send(`early ${i}`) }
      })
      const ws = new WebSocket(gateway.url, { headers: authHeaders(), perMessageDeflate: false })
      const received: string[] = []
      ws.on('message', (data) => received.push(data.toString()))
      await until(() => received.length === 5, 'the five early messages')
      t.same(received, ['early 0', 'early 1', 'early 2', 'early 3', 'early 4'])
      ws.close()
    })

    t.test('a message right at maxPayload passes, one byte more closes 1009 / 1001', async (t) => {
      const { gateway, backend } = await startPair(t, { engine, maxPayload: 1024 })
      const ws = await connect(gateway.url)
      ws.send(Buffer.alloc(1024, 7))
      t.equal((await nextMessage(ws)).data.length, 1024)
      const backendClosed = closeOf(backend.sockets[0])
      ws.send(Buffer.alloc(1025, 7))
      t.same(await closeOf(ws), { code: 1009, reason: 'message too big' }, 'the sender gets 1009')
      t.same(await backendClosed, { code: 1001, reason: 'going away' }, 'the other leg gets 1001')
    })

    t.test('a backend message over maxPayload closes the backend 1009 and the client 1001', async (t) => {
      const { gateway, backend } = await startPair(t, { engine, maxPayload: 1024 }, {
        onConnection: (ws) => ws.on('message', () => ws.send(Buffer.alloc(2048)))
      })
      const ws = await connect(gateway.url)
      const backendClosed = closeOf(backend.sockets[0])
      ws.send('go')
      t.same(await closeOf(ws), { code: 1001, reason: 'going away' })
      t.same(await backendClosed, { code: 1009, reason: 'message too big' })
    })

    t.test('a backend\'s own maxPayload governs what it sends, the gateway\'s what the client sends', async (t) => {
      for (const backendMax of [4096, 512]) {
        const backend = await startBackend(t, { onConnection: (ws) => ws.on('message', (data: Buffer) => ws.send(Buffer.alloc(Number(data.toString())))) })
        const gateway = await startGateway(t, { backends: { [BACKEND_ID]: { url: backend.url, maxPayload: backendMax } }, jwt: { secret: SECRET }, heartbeatInterval: 0, engine, maxPayload: 1024 })
        const ws = await connect(gateway.url)
        ws.send(String(backendMax))
        t.equal((await nextMessage(ws)).data.length, backendMax, `${backendMax}: a message at the backend's limit passes`)
        const backendClosed = closeOf(backend.sockets[0])
        ws.send(String(backendMax + 1))
        t.same(await closeOf(ws), { code: 1001, reason: 'going away' }, `${backendMax}: one byte more closes the client 1001`)
        t.same(await backendClosed, { code: 1009, reason: 'message too big' }, `${backendMax}: and the backend 1009`)
      }
      const backend = await startBackend(t)
      const gateway = await startGateway(t, { backends: { [BACKEND_ID]: { url: backend.url, maxPayload: 4096 } }, jwt: { secret: SECRET }, heartbeatInterval: 0, engine, maxPayload: 1024 })
      const ws = await connect(gateway.url)
      ws.send(Buffer.alloc(2000))
      t.same(await closeOf(ws), { code: 1009, reason: 'message too big' }, 'the client is held to the gateway\'s limit')
    })

    t.test('the gateway answers each client ping with exactly one pong and does not forward it', async (t) => {
      const { gateway, backend } = await startPair(t, { engine })
      const ws = await connect(gateway.url)
      let pongs = 0
      let backendPings = 0
      ws.on('pong', () => pongs++)
      backend.sockets[0].on('ping', () => backendPings++)
      ws.ping('p')
      ws.send('sync')
      await nextMessage(ws)
      await new Promise((resolve) => setTimeout(resolve, 50))
      t.equal(pongs, 1)
      t.equal(backendPings, 0)
      ws.close()
    })

    t.test('close codes and reasons are mirrored both ways', async (t) => {
      const longReason = 'é'.repeat(61) + 'x' // 123 bytes of UTF-8
      const cases: Array<[number, string]> = [[1000, 'bye'], [1001, ''], [1003, 'type'], [1008, 'policy'], [1011, 'oops'], [3000, 'app'], [4999, longReason]]
      const { gateway, backend } = await startPair(t, { engine })
      for (const [code, reason] of cases) {
        for (const from of ['client', 'backend'] as const) {
          const ws = await connect(gateway.url)
          const server = backend.sockets[backend.sockets.length - 1]
          const [closer, other] = from === 'client' ? [ws, server] : [server, ws]
          const otherClosed = closeOf(other)
          closer.close(code, reason)
          t.same(await otherClosed, { code, reason }, `${from} ${code}`)
        }
      }
    })

    t.test('a close with no status code is passed on with no status code', async (t) => {
      const { gateway, backend } = await startPair(t, { engine })
      const ws = await connect(gateway.url)
      const backendClosed = closeOf(backend.sockets[0])
      ws.close()
      t.equal((await backendClosed).code, 1005)
      const ws2 = await connect(gateway.url)
      const clientClosed = closeOf(ws2)
      backend.sockets[1].close()
      t.equal((await clientClosed).code, 1005)
    })

    t.test('a backend that vanishes closes the client with 1014 bad gateway', async (t) => {
      const { gateway, backend } = await startPair(t, { engine })
      const ws = await connect(gateway.url)
      const clientClosed = closeOf(ws)
      backend.sockets[0].terminate()
      t.same(await clientClosed, { code: 1014, reason: 'bad gateway' })
    })

    t.test('a client that vanishes takes the backend leg down', async (t) => {
      const { gateway, backend } = await startPair(t, { engine })
      const ws = await connect(gateway.url)
      const backendClosed = closeOf(backend.sockets[0])
      ws.terminate()
      t.equal((await backendClosed).code, 1006)
    })

    t.test('a client that stops reading pauses the backend leg; nothing is lost', async (t) => {
      const chunk = Buffer.alloc(256 * 1024, 3)
      const count = 256 // 64 MiB
      const { gateway, backend } = await startPair(t, { engine, highWaterMark: 256 * 1024, maxPayload: chunk.length })
      const ws = await connect(gateway.url)
      ws.pause()
      const server = backend.sockets[0]
      for (let i = 0; i < count; i++) server.send(chunk)
      await new Promise((resolve) => setTimeout(resolve, 500))
      // Without backpressure the gateway would have read it all; kernel buffers hold a few MiB at most.
      t.ok(server.bufferedAmount > 32 * 1024 * 1024, `the backend still holds ${server.bufferedAmount} bytes`)
      let received = 0
      ws.on('message', (data: Buffer) => { received += data.length })
      ws.resume()
      await until(() => received === chunk.length * count, 'every byte', 60_000)
      t.equal(received, chunk.length * count)
      ws.close()
    })

    t.test('a backend that stops reading pauses the client leg; nothing is lost', async (t) => {
      const chunk = Buffer.alloc(256 * 1024, 4)
      const count = 256
      let received = 0
      const { gateway, backend } = await startPair(t, { engine, highWaterMark: 256 * 1024, maxPayload: chunk.length }, {
        onConnection: (ws) => { ws.pause(); ws.on('message', (data: Buffer) => { received += data.length }) }
      })
      const ws = await connect(gateway.url)
      for (let i = 0; i < count; i++) ws.send(chunk)
      await new Promise((resolve) => setTimeout(resolve, 500))
      t.ok(ws.bufferedAmount > 32 * 1024 * 1024, `the client still holds ${ws.bufferedAmount} bytes`)
      backend.sockets[0].resume()
      await until(() => received === chunk.length * count, 'every byte', 60_000)
      t.equal(received, chunk.length * count)
      ws.close()
    })

    t.test('the heartbeat terminates a client that stopped answering pings', async (t) => {
      const { gateway, backend } = await startPair(t, { engine, heartbeatInterval: 1000 })
      const ws = new WebSocket(gateway.url, { headers: authHeaders(), perMessageDeflate: false, autoPong: false })
      await once(ws, 'open')
      const backendClosed = closeOf(backend.sockets[0])
      t.equal((await closeOf(ws)).code, 1006)
      t.equal((await backendClosed).code, 1006)
    })

    t.test('the heartbeat terminates a dead backend and closes the client 1014', async (t) => {
      const { gateway } = await startPair(t, { engine, heartbeatInterval: 1000 }, { autoPong: false })
      const ws = await connect(gateway.url)
      t.same(await closeOf(ws), { code: 1014, reason: 'bad gateway' })
    })

    t.test('the heartbeat pings connections spread over its interval, each once per interval', async (t) => {
      const interval = 1000
      const { gateway } = await startPair(t, { engine, heartbeatInterval: interval })
      const clients = await Promise.all(Array.from({ length: 20 }, async () => await connect(gateway.url)))
      const pings = clients.map(() => [] as number[])
      clients.forEach((ws, i) => ws.on('ping', () => pings[i].push(performance.now())))
      await until(() => pings.every((times) => times.length >= 2), 'two pings at every client')
      const first = pings.map((times) => times[0])
      const span = Math.max(...first) - Math.min(...first)
      t.ok(span >= interval / 2, `first pings spread over ${span.toFixed(0)} of ${interval} ms`)
      const periods = pings.map((times) => times[1] - times[0])
      t.ok(periods.every((period) => period > interval * 0.8), `each pinged once per interval: ${periods.map((p) => p.toFixed(0)).join(', ')} ms apart`)
      for (const ws of clients) ws.close()
    })

    t.test('a live connection survives several heartbeats', async (t) => {
      const { gateway } = await startPair(t, { engine, heartbeatInterval: 1000 })
      const ws = await connect(gateway.url)
      await new Promise((resolve) => setTimeout(resolve, 2500))
      t.equal(ws.readyState, WebSocket.OPEN)
      ws.send('still here')
      t.equal((await nextMessage(ws)).data.toString(), 'still here')
      ws.close()
    })

    t.test('idleTimeout closes both legs 1001 after no data, and data keeps it open', async (t) => {
      const { gateway, backend } = await startPair(t, { engine, idleTimeout: 1000 })
      const ws = await connect(gateway.url)
      for (let i = 0; i < 6; i++) {
        await new Promise((resolve) => setTimeout(resolve, 250))
        ws.send('tick')
        await nextMessage(ws)
      }
      t.equal(ws.readyState, WebSocket.OPEN, 'open after 1500 ms of traffic')
      const backendClosed = closeOf(backend.sockets[0])
      t.same(await closeOf(ws), { code: 1001, reason: 'idle timeout' })
      t.same(await backendClosed, { code: 1001, reason: 'idle timeout' })
    })
  })
}

t.test('ws engine: a backend sending invalid UTF-8 is closed 1007 and the client gets 1014', async (t) => {
  const { gateway, backend } = await startPair(t, { engine: 'ws' })
  const ws = await connect(gateway.url)
  const backendClosed = closeOf(backend.sockets[0])
  backend.sockets[0].send(Buffer.from([0xff, 0xfe]), { binary: false })
  t.same(await closeOf(ws), { code: 1014, reason: 'bad gateway' })
  t.equal((await backendClosed).code, 1007)
})
