import { once } from 'node:events'
import net, { type AddressInfo, type Socket } from 'node:net'
import t, { type Test } from 'tap'
import WebSocket from 'ws'
import { RelayConnection } from '../lib/relay/connection'
import { FrameRelay } from '../lib/relay/passthrough/relay'
import type { FrameLeg } from '../lib/relay/passthrough/leg'
import { FrameReader, frame, rawSockets } from './raw-frames'
import type { TestLike } from './helpers'

// The passthrough engine over sockets that read into one reused buffer (`net.connect({ onread })`):
// every chunk is overwritten as soon as the relay returns from it, as the next read would.

t.afterEach(() => {
  for (const socket of rawSockets) socket.destroy()
  rawSockets.clear()
})

/** A WebSocket on `socket`, set up as ws's server sets one up, for the relay to take over. */
function wsOn (socket: Socket): WebSocket {
  const ws = new (WebSocket as unknown as new (...args: unknown[]) => WebSocket)(null, undefined, {})
  ;(ws as unknown as { setSocket: (s: Socket, head: Buffer, o: object) => void }).setSocket(socket, Buffer.alloc(0), {})
  return ws
}

interface Side {
  /** The test's end: a raw peer (the client or the backend), with a reader over what it gets. */
  peer: FrameReader
  /** The relay's end, reading into `buffer`. */
  socket: Socket
  buffer: Buffer
  /** Where the relay's end hands its reads, once the relay is built. */
  deliver: (chunk: Buffer) => void
}

/**
 * A connected pair: the relay's end reads into a `size`-byte buffer it reuses, scribbled over after
 * each read unless the relay paused the socket.
 */
async function side (t: TestLike, size: number): Promise<Side> {
  const server = net.createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  t.teardown(() => server.close())
  const buffer = Buffer.alloc(size)
  const result = { buffer, deliver: (_chunk: Buffer) => { throw new Error('read before the relay') } } as unknown as Side
  result.socket = net.connect({
    port: (server.address() as AddressInfo).port,
    host: '127.0.0.1',
    onread: {
      buffer,
      callback: (n: number, buf: Uint8Array) => {
        result.deliver(Buffer.from(buf.buffer, buf.byteOffset, n))
        // While the socket is read, the next read may land here at any moment: what the relay
        // kept of this one without pausing the socket is garbage from now on.
        if (!result.socket.isPaused()) buf.fill(0xee)
        return true
      }
    }
  })
  const [accepted] = await once(server, 'connection') as [Socket]
  await once(result.socket, 'connect')
  rawSockets.add(result.socket)
  result.peer = new FrameReader(accepted)
  return result
}

/** A relay over two borrowing sides, reading into buffers of the sizes given. */
async function borrowingRelay (t: TestLike, clientSize: number, backendSize: number, highWaterMark = 1000): Promise<{ client: Side, backend: Side, relay: FrameRelay }> {
  const client = await side(t, clientSize)
  const backend = await side(t, backendSize)
  const log = { debug () {} } as unknown as import('fastify').FastifyBaseLogger
  const connection = new RelayConnection({
    maxPayload: 1 << 20,
    backendMaxPayload: 1 << 20,
    highWaterMark,
    idleTimeout: 0,
    slowConsumerTimeout: 0,
    slowConsumerCloseCode: 1008,
    rateLimit: false,
    log,
    onEnd: () => {}
  }, (c) => new FrameRelay(wsOn(client.socket), wsOn(backend.socket), c))
  t.teardown(() => connection.terminate())
  const relay = connection.engine as FrameRelay
  const lend = (s: Side, leg: FrameLeg): void => {
    leg.borrows = true
    s.deliver = (chunk) => relay.data(leg, chunk)
  }
  lend(client, relay.client)
  lend(backend, relay.backend)
  return { client, backend, relay }
}

/** `count` binary frames of `size` bytes, frame i filled with byte i % 251 (so a frame out of place shows). */
function numbered (count: number, size: number, mask: boolean): Buffer {
  return Buffer.concat(Array.from({ length: count }, (_, i) => frame(2, Buffer.alloc(size, i % 251), { mask })))
}

/** Reads `count` frames from `reader`; each must be frame i of `numbered`. */
async function expectNumbered (t: Test, reader: FrameReader, count: number, size: number, masked: boolean): Promise<void> {
  for (let i = 0; i < count; i++) {
    const f = await reader.next()
    const intact = f !== undefined && f.masked === masked && f.payload.length === size && f.payload.every((b) => b === i % 251)
    if (!intact) {
      t.fail(`frame ${i} of ${count} is broken or out of place`)
      return
    }
  }
  t.equal(reader.queued, 0, `${count} frames, all intact and in order`)
}

t.test('frames split across borrowed reads at every byte boundary are relayed intact both ways', async (t) => {
  // Buffers of 1 to 15 bytes put a read boundary at every offset of a header (2 to 14 bytes).
  for (let size = 1; size <= 15; size++) {
    const { client, backend } = await borrowingRelay(t, size, size)
    backend.peer.socket.write(numbered(20, 130, false))
    client.peer.socket.write(numbered(20, 130, true))
    await expectNumbered(t, client.peer, 20, 130, false)
    await expectNumbered(t, backend.peer, 20, 130, true)
  }
})

t.test('many frames in one borrowed read are relayed intact', async (t) => {
  const { client, backend } = await borrowingRelay(t, 65536, 65536)
  backend.peer.socket.write(numbered(500, 64, false))
  client.peer.socket.write(numbered(500, 64, true))
  await expectNumbered(t, client.peer, 500, 64, false)
  await expectNumbered(t, backend.peer, 500, 64, true)
})

for (const highWaterMark of [1000, 64 << 20]) {
  t.test(`what waits for a slow reader is not the borrowed buffer (highWaterMark ${highWaterMark})`, async (t) => {
    // Under a highWaterMark this large only the borrowing keeps the buffer from being read into.
    const { client, backend, relay } = await borrowingRelay(t, 65536, 4096, highWaterMark)
    client.peer.socket.pause()
    backend.peer.socket.pause()
    const count = 300
    backend.peer.socket.write(numbered(count, 20_000, false))
    client.peer.socket.write(numbered(count, 20_000, true))
    // Both legs stop being read while what they lent is in the kernel's hands or queued.
    const stalled = async (): Promise<void> => {
      while (!(relay.backend.lent || relay.backend.paused) || !(relay.client.lent || relay.client.paused)) await new Promise((resolve) => setTimeout(resolve, 5))
    }
    await stalled()
    t.pass('both legs paused')
    client.peer.socket.resume()
    backend.peer.socket.resume()
    await expectNumbered(t, client.peer, count, 20_000, false)
    await expectNumbered(t, backend.peer, count, 20_000, true)
  })
}

t.test('a borrowed chunk behind bytes already queued is copied, and goes out after them', async (t) => {
  const { client, backend, relay } = await borrowingRelay(t, 4096, 4096)
  // A heartbeat ping waits in the relay's socket to the client (corked): what follows it is queued.
  client.socket.cork()
  relay.heartbeat()
  backend.peer.socket.write(numbered(3, 130, false))
  while (relay.backend.traffic.frames < 3) await new Promise((resolve) => setTimeout(resolve, 5))
  t.notOk(relay.backend.lent, 'copied, not lent: the backend is read on')
  client.socket.uncork()
  t.equal((await client.peer.next())?.opcode, 9, 'the ping first')
  await expectNumbered(t, client.peer, 3, 130, false)
})
