import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import net from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import WebSocket from 'ws'
import { ask, closeOf, connect, connectWithId, frames, handshake, nextFrame, sign, startBackend, startHttpBackend, startMessageGateway, tokenHeaders, until } from './helpers'

/*
 * Message-mode connections over their lifetime: heartbeats on the client and on upstreams,
 * shutdown, clients leaving while a hook runs, and back-pressure from a client that catches up.
 */

t.test('heartbeat: a client or an upstream that stops answering pings is terminated', async (t) => {
  const upstream = await startBackend(t, { autoPong: false, onConnection: (ws) => ws.on('message', () => ws.send('"on"')) })
  const gateway = await startMessageGateway(t, { routes: { feed: { ws: upstream.url } } }, { heartbeatInterval: 1000 })
  const ws = await connect(gateway.url, tokenHeaders())
  t.same(await ask(ws, { action: 'feed' }), { type: 'message', route: 'feed', data: 'on' })
  t.match(await nextFrame(ws), { code: 'FST_WS_GATEWAY_BAD_GATEWAY', route: 'feed' }, 'the silent upstream was dropped')
  await sleep(1200)
  t.equal(ws.readyState, WebSocket.OPEN, 'a client that answers pings stays')
  ws.close()
  const silent = new WebSocket(gateway.url, { headers: tokenHeaders(), perMessageDeflate: false, autoPong: false })
  await once(silent, 'open')
  t.equal((await closeOf(silent)).code, 1006, 'a client that does not is terminated')
})

t.test('fastify.close(): clients get 1001 and their upstreams too; one that never answers the close is terminated', async (t) => {
  const upstream = await startBackend(t, { onConnection: (ws) => ws.on('message', () => ws.send('"up"')) })
  const gateway = await startMessageGateway(t, { routes: { feed: { ws: upstream.url } } }, { drainTimeout: 0, closeTimeout: 100 })
  const ws = await connect(gateway.url, tokenHeaders())
  await ask(ws, { action: 'feed' })
  const upstreamClosed = once(upstream.sockets[0], 'close')
  const stuck = await handshake(gateway.port, tokenHeaders(), '/api')
  t.equal(stuck.status, 101)
  const stuckSocket = stuck.socket as NonNullable<typeof stuck.socket>
  // One masked text frame (mask key 0) that opens an upstream, then it reads and never answers.
  const payload = Buffer.from('{"action":"feed"}')
  stuckSocket.write(Buffer.concat([Buffer.from([0x81, 0x80 | payload.length, 0, 0, 0, 0]), payload]))
  while (upstream.sockets.length < 2) await sleep(10)
  const stuckUpstreamClosed = once(upstream.sockets[1], 'close')
  stuckSocket.resume()
  const stuckClosed = once(stuckSocket, 'close')
  const clientClosed = closeOf(ws)
  await gateway.app.close()
  t.same(await clientClosed, { code: 1001, reason: 'server shutting down' })
  t.equal((await upstreamClosed)[0], 1001)
  await stuckClosed
  t.equal((await stuckUpstreamClosed)[0], 1006, 'the silent client was cut off, and its upstream')
})

t.test('a client that leaves while its onMessage hook runs: no backend call, counted as clientGone', async (t) => {
  const backend = await startHttpBackend(t)
  let entered: () => void = () => {}
  const inHook = new Promise<void>((resolve) => { entered = resolve })
  const gateway = await startMessageGateway(t, { onMessage: async () => { entered(); await sleep(200) }, routes: { a: { http: backend.url } } })
  const ws = await connect(gateway.url, tokenHeaders())
  ws.send('{"action":"a"}')
  await inHook
  ws.close()
  await sleep(300)
  t.equal(backend.requests.length, 0)
  t.match(gateway.app.wsGateway.stats().messages, { clientGone: 1 })
})

t.test('a client that falls behind pauses its upstreams and, once it catches up, gets everything', async (t) => {
  // More than the kernel's socket buffers hold, so the gateway's own buffer passes its mark.
  const count = 600
  const upstream = await startBackend(t, {
    onConnection: (ws) => ws.on('message', () => {
      for (let i = 0; i < count; i++) ws.send(JSON.stringify({ i, pad: 'z'.repeat(64 * 1024) }))
      ws.send('')
    })
  })
  const gateway = await startMessageGateway(t, { routes: { burst: { ws: upstream.url } } }, { highWaterMark: 1024, slowConsumerTimeout: 0 })
  const ws = await connect(gateway.url, tokenHeaders())
  ws.pause()
  ws.send('{"action":"burst"}')
  // The burst has started (the upstream could not write it all at once); the client still does
  // not read for a while, so the gateway's buffer for it passes its mark and the upstream is paused.
  await until(() => (upstream.sockets[0]?.bufferedAmount ?? 0) > 0, 'the burst')
  await sleep(500)
  ws.resume()
  const got = await frames(ws, count + 1)
  t.same(got.slice(0, count).map((frame) => (frame.data as { i: number }).i), [...Array(count).keys()], 'all of it, in order')
  t.same(got[count], { type: 'message', route: 'burst', data: null }, 'an empty message is null')
  ws.close()
})

t.test('a route headers function that throws is a MESSAGE_HOOK_FAILED frame', async (t) => {
  const backend = await startHttpBackend(t)
  const gateway = await startMessageGateway(t, { routes: { h: { http: { url: backend.url, headers: () => { throw new Error('no key') } } } } })
  const ws = await connect(gateway.url, tokenHeaders())
  t.match(await ask(ws, { action: 'h', id: 1 }), { code: 'FST_WS_GATEWAY_MESSAGE_HOOK_FAILED', status: 500, id: 1 })
  t.equal(backend.requests.length, 0)
  ws.close()
})

t.test('an unreachable disconnect hook is logged, and the next connection is unaffected', async (t) => {
  const lines: Array<Record<string, unknown>> = []
  const gateway = await startMessageGateway(t, { disconnect: { http: 'http://127.0.0.1:1' }, routes: {} }, {}, { logger: { level: 'warn', stream: { write: (line: string) => { lines.push(JSON.parse(line)) } } } })
  const ws = await connect(gateway.url, { authorization: `Bearer ${sign()}` })
  ws.close()
  while (!lines.some((line) => line.msg === 'ws gateway disconnect hook failed')) await sleep(10)
  t.match(lines.find((line) => line.msg === 'ws gateway disconnect hook failed'), { err: { code: 'FST_WS_GATEWAY_BAD_GATEWAY' } })
  const again = await connect(gateway.url, tokenHeaders())
  again.close()
})

t.test('a client that vanishes takes its upstreams with it', async (t) => {
  const upstream = await startBackend(t, { onConnection: (ws) => ws.on('message', () => ws.send('"up"')) })
  const gateway = await startMessageGateway(t, { routes: { feed: { ws: upstream.url } } })
  const ws = await connect(gateway.url, tokenHeaders())
  await ask(ws, { action: 'feed' })
  const closed = once(upstream.sockets[0], 'close')
  ws.terminate()
  t.equal((await closed)[0], 1006)
})

t.test('a client that leaves while the connect hook runs: the hook is aborted, counted as CLIENT_GONE', async (t) => {
  const hooks = await startHttpBackend(t, () => {})
  const gateway = await startMessageGateway(t, { connect: { http: hooks.url }, routes: {} })
  const client = net.connect(gateway.port, '127.0.0.1')
  await once(client, 'connect')
  client.write([
    'GET /api HTTP/1.1', 'Host: 127.0.0.1', 'Connection: Upgrade', 'Upgrade: websocket', 'Sec-WebSocket-Version: 13',
    `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}`, `Authorization: Bearer ${sign({ sub: undefined })}`, '', ''
  ].join('\r\n'))
  while (hooks.requests.length === 0) await sleep(10)
  t.equal(JSON.parse(hooks.requests[0].body).sub, null, 'a token without sub')
  t.equal(hooks.requests[0].headers['x-user-sub'], undefined)
  client.destroy()
  await hooks.requests[0].aborted
  while (gateway.app.wsGateway.stats().rejected.FST_WS_GATEWAY_CLIENT_GONE === undefined) await sleep(10)
  t.pass('aborted and counted')
})

t.test('a message-mode connection is in the registry: the app pushes to the id its backends got', async (t) => {
  const backend = await startHttpBackend(t)
  const gateway = await startMessageGateway(t, { routes: { a: { http: backend.url } } })
  const { ws, id } = await connectWithId(gateway.url, tokenHeaders())
  await ask(ws, { action: 'a' })
  t.equal(backend.requests[0].headers['x-connection-id'], id, 'the id of the 101 is the one backends get')
  const pushed = nextFrame(ws)
  await gateway.app.wsGateway.send(id, '{"type":"push","n":1}')
  t.same(await pushed, { type: 'push', n: 1 })
  // A client that stops reading: the push is refused once its buffer is over highWaterMark.
  const stuck = await handshake(gateway.port, tokenHeaders(), '/api')
  const stuckId = stuck.headers['x-connection-id'] as string
  const big = 'z'.repeat(64 * 1024)
  let refused: unknown
  for (let i = 0; i < 1000 && refused === undefined; i++) await gateway.app.wsGateway.send(stuckId, big).catch((err: unknown) => { refused = err })
  t.match(refused, { code: 'FST_WS_GATEWAY_CLIENT_BUFFER_FULL' })
  // Closing (the client never answers the close): a push is refused as gone.
  await gateway.app.wsGateway.close(stuckId, 4000, 'bye')
  await t.rejects(gateway.app.wsGateway.send(stuckId, 'late'), { code: 'FST_WS_GATEWAY_CONNECTION_GONE' })
  stuck.socket?.destroy()
  ws.close()
})
