import { once } from 'node:events'
import net, { type AddressInfo, type Socket } from 'node:net'
import tls from 'node:tls'
import t from 'tap'
import { BULK_READ, ONREAD_SLOTS, READ_SIZE, borrowReads, canBorrow, onreadSlots } from '../lib/relay/passthrough/borrow'
import { connect, startPair, type TestLike } from './helpers'

// Legs that carry bulk data read into a buffer of their own (borrow.ts): the switch on sockets
// Node made, and the relay over it.

/** A connected pair of plain TCP sockets: ours (accepted by a server, as a client leg is) and the peer. */
async function tcpPair (t: TestLike): Promise<{ ours: Socket, peer: Socket }> {
  const server = net.createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const peer = net.connect((server.address() as AddressInfo).port, '127.0.0.1')
  const [ours] = await once(server, 'connection') as [Socket]
  t.teardown(() => {
    ours.destroy()
    peer.destroy()
    server.close()
  })
  return { ours, peer }
}

const slotOf = (socket: Socket): unknown => (socket as unknown as Record<symbol, unknown>)[(ONREAD_SLOTS as { buffer: symbol }).buffer]

t.test('the slots onread fills are found on this Node, and not on what has none', async (t) => {
  t.ok(ONREAD_SLOTS, 'found')
  t.equal(onreadSlots({}), undefined)
})

t.test('a server socket switched to a reused buffer: reads go to the callback, end, pause and resume still work', async (t) => {
  const { ours, peer } = await tcpPair(t)
  const reads: Array<{ self: Socket, bytes: Buffer, buffer: Buffer }> = []
  t.ok(borrowReads(ours, function (n, buffer) { reads.push({ self: this, bytes: Buffer.from(buffer.subarray(0, n)), buffer }) }, () => undefined))
  t.notOk(borrowReads(ours, () => {}, () => undefined), 'not twice')
  ours.resume()
  peer.write('first')
  while (reads.length === 0) await new Promise((resolve) => setTimeout(resolve, 5))
  t.equal(reads[0].self, ours, 'called on the socket')
  t.equal(reads[0].bytes.toString(), 'first')
  t.equal(reads[0].buffer.length, READ_SIZE)
  ours.pause()
  peer.write('second')
  await new Promise((resolve) => setTimeout(resolve, 50))
  t.equal(reads.length, 1, 'not read while paused')
  ours.resume()
  peer.end()
  await once(ours, 'end')
  t.equal(reads.map((r) => r.bytes.toString()).join(''), 'firstsecond')
  t.equal(reads[1].buffer, reads[0].buffer, 'the same buffer every read')
})

t.test('no switch where it is not safe or not possible', async (t) => {
  const { ours, peer } = await tcpPair(t)
  t.notOk(canBorrow(ours, undefined), 'a Node without the slots')
  t.notOk(canBorrow(new tls.TLSSocket(new net.Socket()), ONREAD_SLOTS), 'TLS')
  ours.pause()
  peer.write('buffered')
  while (ours.readableLength === 0) await new Promise((resolve) => setTimeout(resolve, 5))
  t.notOk(borrowReads(ours, () => {}, () => undefined), 'bytes still buffered')
  ours.destroy()
  t.notOk(canBorrow(ours, ONREAD_SLOTS), 'no handle any more')
})

t.test('64 KiB messages both ways: the legs switch after the first bulk read, every message intact and in order', async (t) => {
  const accepted: Socket[] = []
  const { gateway } = await startPair(t, {}, undefined, undefined, (app) => { app.server.on('connection', (s: Socket) => accepted.push(s)) })
  const ws = await connect(gateway.url)
  t.teardown(() => ws.terminate())
  const echoes: Buffer[] = []
  ws.on('message', (data: Buffer) => echoes.push(data))
  const expect = async (count: number): Promise<void> => {
    while (echoes.length < count) await new Promise((resolve) => setTimeout(resolve, 5))
  }
  ws.send(Buffer.alloc(64, 1))
  await expect(1)
  t.equal(slotOf(accepted[0]), null, 'small messages: no buffer of its own')
  // Many at once, and the client not reading for a while: the gateway's writes queue, paused
  // lenders and copies of lent bytes included.
  const count = 120
  const size = 64 * 1024
  const socket = (ws as unknown as { _socket: Socket })._socket
  socket.pause()
  for (let i = 0; i < count; i++) ws.send(Buffer.alloc(size, i % 251))
  await new Promise((resolve) => setTimeout(resolve, 200))
  socket.resume()
  await expect(1 + count)
  t.ok(Buffer.isBuffer(slotOf(accepted[0])), 'the client leg reads into a buffer of its own')
  const broken = echoes.slice(1).findIndex((m, i) => m.length !== size || !m.every((b) => b === i % 251))
  t.equal(broken, -1, `${count} messages of ${size} bytes, intact and in order`)
  t.ok(size >= BULK_READ)
  ws.close(1000)
  t.equal((await once(ws, 'close'))[0], 1000)
})
