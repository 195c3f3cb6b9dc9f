import { once } from 'node:events'
import net from 'node:net'
import t from 'tap'
import WebSocket from 'ws'
import wsGateway from '../lib/index'
import type { RelayEngine } from '../lib/options/types'
import { BACKEND_ID, SECRET, authHeaders, closeOf, sign, connectWithId, handshake, headersFor, nextMessage, startBackend, startGateway, startPair, until } from './helpers'

for (const engine of ['passthrough', 'ws'] as RelayEngine[]) {
  t.test(`${engine} engine: the registry API reaches a relayed connection`, async (t) => {
    const { gateway, backend } = await startPair(t, { engine })
    const api = gateway.app.wsGateway
    const { ws, id } = await connectWithId(gateway.url, headersFor('alice', { 'user-agent': 'test-agent', 'x-connection-id': 'spoofed' }))
    t.match(id, /^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]{16}$/, 'the 101 names the connection')
    t.equal(backend.requests[0].headers['x-connection-id'], id, 'the backend learns the same id, never the client\'s')

    const info = await api.get(id)
    t.match(info, { id, path: '/ws', backendId: BACKEND_ID, sub: 'alice', sourceIp: '127.0.0.1', userAgent: 'test-agent' })
    t.ok(Date.parse(info?.connectedAt as string) <= Date.parse(info?.lastActiveAt as string))
    t.same((await api.list()).items.map((item) => item.id), [id])

    await api.send(id, 'hello')
    let message = await nextMessage(ws)
    t.same([message.data.toString(), message.isBinary], ['hello', false], 'a string goes as text')
    await api.send(id, Buffer.from([1, 2, 3]))
    message = await nextMessage(ws)
    t.same([[...message.data], message.isBinary], [[1, 2, 3], true], 'a Buffer goes as binary')
    await api.send(id, 'as binary', { binary: true })
    t.equal((await nextMessage(ws)).isBinary, true)
    await api.send(id, Buffer.from('as text'), { binary: false })
    t.equal((await nextMessage(ws)).isBinary, false)
    await api.send(id, Buffer.alloc(70_000, 1))
    t.equal((await nextMessage(ws)).data.length, 70_000, 'a message over 64 KiB (a 64-bit length)')
    ws.send('still relayed')
    t.equal((await nextMessage(ws)).data.toString(), 'still relayed', 'the relay goes on around the pushes')

    const clientClosed = closeOf(ws)
    const backendClosed = closeOf(backend.sockets[0])
    await api.close(id, 4001, 'account revoked')
    t.same(await clientClosed, { code: 4001, reason: 'account revoked' })
    t.same(await backendClosed, { code: 1001, reason: 'going away' }, 'the backend leg is closed 1001')
    await until(async () => (await api.get(id)) === undefined, 'the registry to forget the connection')
    await t.rejects(api.send(id, 'late'), { code: 'FST_WS_GATEWAY_CONNECTION_GONE', statusCode: 410 })
    await t.rejects(api.close(id), { code: 'FST_WS_GATEWAY_CONNECTION_GONE', statusCode: 410 })
    t.equal(gateway.app.wsGateway.stats().registry.pushed, 5)
  })

  t.test(`${engine} engine: a connection that is closing takes no more messages`, async (t) => {
    const { gateway } = await startPair(t, { engine })
    const api = gateway.app.wsGateway
    const { ws, id } = await connectWithId(gateway.url, authHeaders({ authorization: `Bearer ${sign({ sub: undefined })}` }))
    t.equal((await api.get(id))?.sub, undefined, 'a token without sub')
    const closed = closeOf(ws)
    await api.close(id, 1000)
    await t.rejects(api.send(id, 'too late'), { code: 'FST_WS_GATEWAY_CONNECTION_GONE' })
    t.equal((await closed).code, 1000)
  })

  t.test(`${engine} engine: a pushed message never lands inside a fragmented backend message`, async (t) => {
    const { gateway, backend } = await startPair(t, { engine })
    const { ws, id } = await connectWithId(gateway.url)
    const messages: string[] = []
    ws.on('message', (data) => messages.push(data.toString()))
    const server = backend.sockets[0]
    server.send('first half, ', { fin: false })
    // The gateway reads the first fragment before the push (a round trip through the relay).
    await new Promise((resolve) => setTimeout(resolve, 50))
    await gateway.app.wsGateway.send(id, 'pushed')
    server.send('second half', { fin: true })
    await until(() => messages.length === 2, 'two messages')
    // Passthrough had forwarded the first fragment, so the push waits for the message's end; the
    // ws engine holds a message until it is whole, so the push goes out before it.
    t.same(messages, engine === 'passthrough' ? ['first half, second half', 'pushed'] : ['pushed', 'first half, second half'])
  })

  t.test(`${engine} engine: a client that does not read gets CLIENT_BUFFER_FULL, never an unbounded buffer`, async (t) => {
    const { gateway } = await startPair(t, { engine, highWaterMark: 64 * 1024, maxPayload: 64 * 1024 })
    const answer = await handshake(gateway.port, headersFor('slow'))
    const socket = answer.socket as net.Socket
    t.teardown(() => socket.destroy())
    socket.pause()
    const id = answer.headers['x-connection-id'] as string
    const chunk = Buffer.alloc(60 * 1024)
    let sent = 0
    let error: unknown
    // Bounded: the kernel's buffers take a few MiB at most before the gateway's own fill up.
    while (sent < 2000) {
      try {
        await gateway.app.wsGateway.send(id, chunk)
        sent++
      } catch (err) {
        error = err
        break
      }
    }
    t.match(error, { code: 'FST_WS_GATEWAY_CLIENT_BUFFER_FULL', statusCode: 429 })
    t.ok(sent > 0, `${sent} messages went out before`)
  })
}

t.test('sendToUser, closeUser and broadcast reach exactly the connections they pick', async (t) => {
  const backend = await startBackend(t)
  const gateway = await startGateway(t, { backends: { [BACKEND_ID]: backend.url, Other: backend.url }, jwt: { secret: SECRET }, heartbeatInterval: 0 })
  const api = gateway.app.wsGateway
  const a1 = await connectWithId(gateway.url, headersFor('alice'))
  const a2 = await connectWithId(gateway.url, headersFor('alice', { id: 'Other' }))
  const b = await connectWithId(gateway.url, headersFor('bob'))
  const got = new Map<string, string[]>()
  for (const [name, { ws }] of Object.entries({ a1, a2, b })) {
    got.set(name, [])
    ws.on('message', (data) => got.get(name)?.push(data.toString()))
  }
  t.same(await api.sendToUser('alice', 'to alice'), { connections: 2 })
  t.same(await api.sendToUser('nobody', 'to nobody'), { connections: 0 })
  t.same(await api.broadcast('to Other', { backendId: 'Other' }), { connections: 1 })
  t.same(await api.broadcast('to all', { path: '/ws' }), { connections: 3 })
  t.same(await api.broadcast('to no path', { path: '/elsewhere' }), { connections: 0 })
  await until(() => got.get('a1')?.length === 2 && got.get('a2')?.length === 3 && got.get('b')?.length === 1, 'the messages')
  t.same(Object.fromEntries(got), { a1: ['to alice', 'to all'], a2: ['to alice', 'to Other', 'to all'], b: ['to all'] })

  t.same((await api.list({ sub: 'alice' })).items.map((item) => item.id).sort(), [a1.id, a2.id].sort())
  t.same((await api.list({ backendId: 'Other' })).items.map((item) => item.id), [a2.id])
  const closes = [closeOf(a1.ws), closeOf(a2.ws)]
  t.same(await api.closeUser('alice', 4000, 'bye'), { connections: 2 })
  t.same(await Promise.all(closes), [{ code: 4000, reason: 'bye' }, { code: 4000, reason: 'bye' }])
  t.equal(b.ws.readyState, WebSocket.OPEN, 'bob stays')
})

t.test('list pages through every connection in id order with an opaque cursor', async (t) => {
  const { gateway } = await startPair(t)
  const api = gateway.app.wsGateway
  const ids: string[] = []
  for (let i = 0; i < 5; i++) ids.push((await connectWithId(gateway.url, headersFor(`user-${i}`))).id)
  const seen: string[] = []
  let page = await api.list({ limit: 2 })
  seen.push(...page.items.map((item) => item.id))
  while (page.cursor !== undefined) {
    page = await api.list({ limit: 2, cursor: page.cursor })
    seen.push(...page.items.map((item) => item.id))
  }
  t.same(seen, [...ids].sort())
  await t.rejects(api.list({ cursor: 'not a cursor!' }), { code: 'FST_WS_GATEWAY_INVALID_QUERY', statusCode: 400 })
  for (const limit of [0, 1001, 1.5]) await t.rejects(api.list({ limit }), { code: 'FST_WS_GATEWAY_INVALID_QUERY' })
  await t.rejects(api.list({ sub: '' }), { code: 'FST_WS_GATEWAY_INVALID_QUERY' })
  await t.rejects(api.list({ nope: 1 } as never), /unknown field "nope"/)
  await t.rejects(api.list('sub=x' as never), { code: 'FST_WS_GATEWAY_INVALID_QUERY' })
})

t.test('bad input to the API is refused with a coded error, and nothing is sent', async (t) => {
  const { gateway, backend } = await startPair(t, { maxPayload: 100 })
  const api = gateway.app.wsGateway
  const { ws, id } = await connectWithId(gateway.url)
  const received: Buffer[] = []
  ws.on('message', (data: Buffer) => received.push(data))

  await t.rejects(api.send(id, Buffer.alloc(101)), { code: 'FST_WS_GATEWAY_PAYLOAD_TOO_LARGE', statusCode: 413 })
  await t.rejects(api.send(id, 42 as never), { code: 'FST_WS_GATEWAY_INVALID_PAYLOAD', statusCode: 400 })
  await t.rejects(api.send(id, 'x', { binary: 'yes' } as never), { code: 'FST_WS_GATEWAY_INVALID_PAYLOAD' })
  await t.rejects(api.send(id, Buffer.from([0xff, 0xfe]), { binary: false }), /valid UTF-8/)
  await t.rejects(api.broadcast('x', { path: 3 } as never), { code: 'FST_WS_GATEWAY_INVALID_QUERY' })
  await t.rejects(api.sendToUser('', 'x'), { code: 'FST_WS_GATEWAY_INVALID_QUERY' })
  for (const unknown of ['nope', 'a.b', `${id}x`, `no de.${'x'.repeat(16)}`, 42 as never]) {
    await t.rejects(api.send(unknown, 'x'), { code: 'FST_WS_GATEWAY_CONNECTION_GONE' }, `send(${String(unknown)})`)
    t.equal(await api.get(unknown), undefined)
  }
  await t.rejects(api.close(42 as never), { code: 'FST_WS_GATEWAY_CONNECTION_GONE' })
  for (const code of [999, 1002, 1005, 1006, 1010, 1015, 2999, 5000, 1000.5, '1000']) {
    await t.rejects(api.close(id, code as number), { code: 'FST_WS_GATEWAY_INVALID_CLOSE_CODE', statusCode: 400 }, `close code ${code}`)
  }
  await t.rejects(api.close(id, 1000, 7 as never), { code: 'FST_WS_GATEWAY_INVALID_CLOSE_CODE' })
  t.equal(ws.readyState, WebSocket.OPEN, 'still open after every refusal')

  await api.send(id, 'x'.repeat(100))
  await until(() => received.length === 1, 'the one message that fits')
  t.same(received.map((data) => data.length), [100])

  // 100 × "é" is 200 bytes: the reason is cut to 123 bytes on a character boundary.
  const clientClosed = closeOf(ws)
  const backendClosed = closeOf(backend.sockets[0])
  await api.close(id, 1000, 'é'.repeat(100))
  const { code, reason } = await clientClosed
  t.equal(code, 1000)
  t.equal(Buffer.byteLength(reason), 122)
  t.equal(reason, 'é'.repeat(61))
  t.same(await backendClosed, { code: 1001, reason: 'going away' })
})

t.test('every accepted close code reaches the client as sent', async (t) => {
  const { gateway } = await startPair(t)
  for (const code of [1000, 1001, 1008, 1011, 1012, 1013, 1014, 3000, 4999]) {
    const { ws, id } = await connectWithId(gateway.url)
    const closed = closeOf(ws)
    await gateway.app.wsGateway.close(id, code)
    t.same(await closed, { code, reason: '' }, `close ${code}`)
  }
})

t.test('two gateway paths in one app share one API; broadcast can pick a path', async (t) => {
  const backend = await startBackend(t)
  const gateway = await startGateway(t, { backends: { [BACKEND_ID]: backend.url }, jwt: { secret: SECRET }, heartbeatInterval: 0 }, {}, async (app) => {
    await app.register(wsGateway, { path: '/second', backends: { [BACKEND_ID]: backend.url }, jwt: { secret: SECRET }, heartbeatInterval: 0 })
  })
  const first = await connectWithId(gateway.url)
  const second = await connectWithId(gateway.url.replace('/ws', '/second'))
  t.equal((await gateway.app.wsGateway.get(second.id))?.path, '/second')
  const got = once(second.ws, 'message')
  t.same(await gateway.app.wsGateway.broadcast('only second', { path: '/second' }), { connections: 1 })
  t.equal(String((await got)[0]), 'only second')
  t.same(await gateway.app.wsGateway.broadcast('everyone'), { connections: 2 })
  t.equal(String((await once(first.ws, 'message'))[0]), 'everyone')
})

t.test('a fan-out skips (and counts) a target that cannot take the message, and reaches the rest', async (t) => {
  const backend = await startBackend(t)
  const gateway = await startGateway(t, { backends: { [BACKEND_ID]: backend.url }, jwt: { secret: SECRET }, heartbeatInterval: 0 }, {}, async (app) => {
    await app.register(wsGateway, { path: '/small', maxPayload: 10, backends: { [BACKEND_ID]: backend.url }, jwt: { secret: SECRET }, heartbeatInterval: 0 })
  })
  const large = await connectWithId(gateway.url)
  await connectWithId(gateway.url.replace('/ws', '/small'))
  const got = once(large.ws, 'message')
  t.same(await gateway.app.wsGateway.broadcast('more than ten bytes'), { connections: 2 }, 'addressed to both')
  t.equal(String((await got)[0]), 'more than ten bytes')
  t.match(gateway.app.wsGateway.stats().registry, { pushed: 1, skipped: 1 })
})
