import t from 'tap'
import WebSocket from 'ws'
import type { RelayEngine } from '../lib/options/types'
import { closeOf, connect, nextMessage, startPair, until } from './helpers'

// Control frames are charged like messages and answered one pong at a time (issue 12 §1): a client
// flooding pings or pongs is closed 1008 on both engines, and never costs the gateway a pong per ping.

for (const engine of ['passthrough', 'ws'] as RelayEngine[]) {
  t.test(`${engine} engine`, async (t) => {
    t.test('a client that floods pings without reading is closed 1008; another client is unaffected', async (t) => {
      const { gateway, backend } = await startPair(t, { engine })
      const victim = await connect(gateway.url)
      const flooder = await connect(gateway.url)
      flooder.pause()
      const backendClosed = closeOf(backend.sockets[1])
      // Twice the default allowance of 10,000 messages a second, in one burst.
      for (let i = 0; i < 20_000; i++) flooder.ping()
      t.same(await backendClosed, { code: 1001, reason: 'going away' })
      victim.send('still here')
      t.equal((await nextMessage(victim)).data.toString(), 'still here')
      flooder.resume()
      t.same(await closeOf(flooder), { code: 1008, reason: 'rate limit' })
      victim.close()
    })

    t.test('a client that keeps flooding after its 1008 is cut, not read until the close timeout', async (t) => {
      const { gateway, backend } = await startPair(t, { engine, rateLimit: { messagesPerSecond: 10 } })
      const ws = await connect(gateway.url)
      ws.on('error', () => {})
      ws.pause()
      const backendClosed = closeOf(backend.sockets[0])
      // 10 allowed, the 11th closes it 1008 with one more second's allowance, the 22nd cuts it
      // (later ones if the gateway reads them slowly enough for the bucket to refill a little).
      for (let i = 0; i < 100; i++) ws.ping()
      t.same(await backendClosed, { code: 1001, reason: 'going away' })
      await until(() => gateway.app.wsGateway.stats().open === 0, 'the connection to end')
      t.equal(gateway.app.wsGateway.stats().open, 0, 'gone at once, although the client never answered the close')
    })

    t.test('pongs count too: unsolicited pongs over the message rate close the client 1008', async (t) => {
      const { gateway } = await startPair(t, { engine, rateLimit: { messagesPerSecond: 10 } })
      const ws = await connect(gateway.url)
      for (let i = 0; i < 30; i++) ws.pong('unsolicited')
      t.same(await closeOf(ws), { code: 1008, reason: 'rate limit' })
    })

    t.test('with onExceeded drop, pings over the limit are not answered and are counted as dropped', async (t) => {
      const { gateway } = await startPair(t, { engine, rateLimit: { messagesPerSecond: 1, onExceeded: 'drop' } })
      const ws = await connect(gateway.url)
      const pongs: number[] = []
      ws.on('pong', (data: Buffer) => pongs.push(Number(data.toString())))
      for (let i = 0; i < 20; i++) ws.ping(String(i))
      // One a second: the first passes; another only if the rest took a second to arrive.
      await until(() => gateway.app.wsGateway.stats().dropped >= 18, 'the pings over the limit dropped')
      await until(() => pongs.length > 0, 'a pong')
      await new Promise((resolve) => setTimeout(resolve, 50))
      t.ok(pongs.every((n) => n <= 1), `answered: ${pongs.join(', ')}`)
      t.equal(ws.readyState, WebSocket.OPEN)
      ws.close()
    })

    t.test('pings that come while a pong is being written get one pong, for the latest', async (t) => {
      const { gateway } = await startPair(t, { engine, rateLimit: false })
      const ws = await connect(gateway.url)
      const count = 50_000
      let pongs = 0
      let latest = ''
      ws.on('pong', (data: Buffer) => {
        pongs++
        latest = data.toString()
      })
      for (let i = 0; i < count; i++) ws.ping(String(i))
      ws.send('sync')
      t.equal((await nextMessage(ws)).data.toString(), 'sync')
      await until(() => latest === String(count - 1), 'the pong to the last ping')
      t.ok(pongs < count / 10, `${pongs} pongs for ${count} pings`)
      ws.close()
    })
  })
}
