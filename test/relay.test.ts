import t from 'tap'
import { authHeaders, closeOf, connect, nextMessage, startPair } from './helpers'

t.test('text stays text and binary stays binary, in order, both ways', async (t) => {
  const { gateway } = await startPair(t)
  const ws = await connect(gateway.url)
  const sent: Array<[Buffer, boolean]> = [
    [Buffer.from('hello'), false],
    [Buffer.from([0, 1, 2, 255]), true],
    [Buffer.alloc(0), false],
    [Buffer.alloc(0), true],
    [Buffer.from('héllo wörld ✓'), false]
  ]
  const received: Array<[Buffer, boolean]> = []
  ws.on('message', (data: Buffer, isBinary: boolean) => received.push([data, isBinary]))
  for (const [data, binary] of sent) ws.send(data, { binary })
  await t.resolves(new Promise<void>((resolve) => { const check = (): void => { if (received.length === sent.length) resolve(); else setTimeout(check, 5) }; check() }))
  t.same(received.map(([d, b]) => [d.toString('hex'), b]), sent.map(([d, b]) => [d.toString('hex'), b]))
  ws.close(1000)
  t.equal((await closeOf(ws)).code, 1000)
})

t.test('a message right at maxPayload passes', async (t) => {
  const { gateway } = await startPair(t, { maxPayload: 1024 })
  const ws = await connect(gateway.url, authHeaders())
  ws.send(Buffer.alloc(1024, 7))
  const { data, isBinary } = await nextMessage(ws)
  t.equal(data.length, 1024)
  t.equal(isBinary, true)
  ws.close()
})
