import { setTimeout as sleep } from 'node:timers/promises'
import type http from 'node:http'
import createError from '@fastify/error'
import t from 'tap'
import { ask, closeOf, connect, frames, startHttpBackend, startMessageGateway, tokenHeaders, type SeenRequest } from './helpers'

/*
 * Message mode's middleware and flow control over real sockets: timeouts, the circuit breaker,
 * clients leaving mid-request, the in-flight cap's back-pressure, and the onMessage hooks.
 */

/** A backend that holds every request until the test answers it. */
async function startHeldBackend (t: Parameters<typeof startHttpBackend>[0]): Promise<{ url: string, held: Array<{ seen: SeenRequest, res: http.ServerResponse }>, arrived: (n: number) => Promise<void> }> {
  const held: Array<{ seen: SeenRequest, res: http.ServerResponse }> = []
  const waiters: Array<() => void> = []
  const backend = await startHttpBackend(t, (seen, res) => {
    held.push({ seen, res })
    for (const wake of waiters.splice(0)) wake()
  })
  const arrived = async (n: number): Promise<void> => {
    while (held.length < n) await new Promise<void>((resolve) => waiters.push(resolve))
  }
  return { url: backend.url, held, arrived }
}

t.test('TIMEOUT 504: no answer in time aborts the backend request', async (t) => {
  const backend = await startHeldBackend(t)
  const gateway = await startMessageGateway(t, { timeout: 10_000, routes: { slow: { http: { url: backend.url, timeout: 500 } } } })
  const ws = await connect(gateway.url, tokenHeaders())
  const answer = ask(ws, { action: 'slow', id: 't' })
  await backend.arrived(1)
  t.same(await answer, { type: 'error', id: 't', route: 'slow', code: 'FST_WS_GATEWAY_TIMEOUT', status: 504, message: 'The backend did not answer in time' })
  await backend.held[0].seen.aborted
  t.pass('the backend saw its request aborted')
  ws.close()
})

t.test('a client closing mid-request aborts the backend request, gets nothing, and counts as clientGone', async (t) => {
  const backend = await startHeldBackend(t)
  const gateway = await startMessageGateway(t, { routes: { slow: { http: backend.url, circuitBreaker: { failures: 1, resetAfter: 60_000 } } } })
  for (let i = 0; i < 3; i++) {
    const ws = await connect(gateway.url, tokenHeaders())
    ws.send(JSON.stringify({ action: 'slow' }))
    await backend.arrived(i + 1)
    ws.close()
    await backend.held[i].seen.aborted
  }
  const stats = gateway.app.wsGateway.stats()
  t.match(stats.messages, { requests: 3, replies: 0, clientGone: 3, errors: {} })
  // Three departures with a breaker that opens on one failure: still closed.
  const ws = await connect(gateway.url, tokenHeaders())
  const reply = ask(ws, { action: 'slow', id: 'after' })
  await backend.arrived(4)
  backend.held[3].res.writeHead(200, { 'content-type': 'application/json' }).end('"fine"')
  t.same(await reply, { type: 'reply', id: 'after', route: 'slow', status: 200, data: 'fine' })
  ws.close()
})

t.test('CIRCUIT_OPEN 503: opens after failures in a row, lets one trial through after resetAfter, closes on success', async (t) => {
  let healthy = false
  const backend = await startHttpBackend(t, (_seen, res) => {
    if (healthy) res.writeHead(200, { 'content-type': 'application/json' }).end('{}')
    else res.writeHead(503).end()
  })
  const gateway = await startMessageGateway(t, { circuitBreaker: { failures: 2, resetAfter: 300 }, routes: { flaky: { http: backend.url }, never: { http: backend.url, circuitBreaker: false } } })
  const ws = await connect(gateway.url, tokenHeaders())
  t.equal((await ask(ws, { action: 'flaky' })).code, 'FST_WS_GATEWAY_BACKEND_ERROR')
  t.equal((await ask(ws, { action: 'flaky' })).code, 'FST_WS_GATEWAY_BACKEND_ERROR')
  t.same(await ask(ws, { action: 'flaky', id: 'o' }), { type: 'error', id: 'o', route: 'flaky', code: 'FST_WS_GATEWAY_CIRCUIT_OPEN', status: 503, message: 'The backend is unavailable, retry later', retryAfter: 1 })
  t.equal(backend.requests.length, 2, 'an open circuit sends nothing')
  for (let i = 0; i < 3; i++) t.equal((await ask(ws, { action: 'never' })).code, 'FST_WS_GATEWAY_BACKEND_ERROR', 'a route without a breaker keeps trying')
  await sleep(350)
  t.equal((await ask(ws, { action: 'flaky' })).code, 'FST_WS_GATEWAY_BACKEND_ERROR', 'the trial failed')
  t.equal((await ask(ws, { action: 'flaky' })).code, 'FST_WS_GATEWAY_CIRCUIT_OPEN', 'and reopened it')
  await sleep(350)
  healthy = true
  t.equal((await ask(ws, { action: 'flaky' })).type, 'reply', 'the trial succeeded')
  t.equal((await ask(ws, { action: 'flaky' })).type, 'reply', 'and closed it')
  ws.close()
})

t.test('a 4xx does not count against the breaker; a trial whose client left gives its turn back', async (t) => {
  const backend = await startHeldBackend(t)
  const gateway = await startMessageGateway(t, { routes: { r: { http: backend.url, circuitBreaker: { failures: 1, resetAfter: 100 } } } })
  const ws = await connect(gateway.url, tokenHeaders())
  let reply = ask(ws, { action: 'r' })
  await backend.arrived(1)
  backend.held[0].res.writeHead(404).end()
  t.equal((await reply).code, 'FST_WS_GATEWAY_BACKEND_REJECTED')
  reply = ask(ws, { action: 'r' })
  await backend.arrived(2)
  backend.held[1].res.writeHead(500).end()
  t.equal((await reply).code, 'FST_WS_GATEWAY_BACKEND_ERROR')
  await sleep(150)
  // The trial's client leaves: no verdict, the next request is the trial.
  const leaving = await connect(gateway.url, tokenHeaders())
  leaving.send(JSON.stringify({ action: 'r' }))
  await backend.arrived(3)
  t.equal((await ask(ws, { action: 'r' })).code, 'FST_WS_GATEWAY_CIRCUIT_OPEN', 'one trial at a time')
  leaving.close()
  await backend.held[2].seen.aborted
  reply = ask(ws, { action: 'r' })
  await backend.arrived(4)
  backend.held[3].res.writeHead(200).end()
  t.equal((await reply).type, 'reply')
  ws.close()
})

t.test('maxInFlight: at the cap the socket stops being read; nothing queues without bound', async (t) => {
  const backend = await startHeldBackend(t)
  const gateway = await startMessageGateway(t, { maxInFlight: 2, routes: { slow: { http: backend.url } } }, { maxPayload: 1024 * 1024 })
  const ws = await connect(gateway.url, tokenHeaders())
  const pad = 'x'.repeat(64 * 1024)
  const total = 400
  for (let i = 0; i < total; i++) ws.send(JSON.stringify({ action: 'slow', id: i, pad }))
  await backend.arrived(2)
  await sleep(300)
  t.equal(backend.held.length, 2, 'the backend sees at most maxInFlight requests')
  t.ok(ws.bufferedAmount > 0, `the client could not send it all: ${ws.bufferedAmount} bytes still on the client`)
  t.equal(gateway.app.wsGateway.stats().fromClient.frames < total, true, 'the gateway has not read everything')
  // Answer as requests come: everything arrives, in order of completion, each with its id.
  const answered = new Set<number>()
  const collect = frames(ws, total)
  for (let i = 0; i < total; i++) {
    await backend.arrived(i + 1)
    t.ok(backend.held.length - i <= 2, 'never more than two in flight')
    backend.held[i].res.writeHead(204).end()
  }
  for (const frame of await collect) answered.add(frame.id as number)
  t.equal(answered.size, total)
  ws.close()
})

t.test('onMessage hooks (registration, then route) may transform or refuse; a hook bug is a 500 frame, logged', async (t) => {
  const backend = await startHttpBackend(t)
  const NotYours = createError('APP_NOT_YOURS', 'This room is not yours', 403)
  const lines: Array<Record<string, unknown>> = []
  const gateway = await startMessageGateway(t, {
    onMessage: (message) => {
      if ((message as { boom?: boolean }).boom === true) throw new Error('registration hook bug')
      return { ...(message as object), stamped: true }
    },
    routes: {
      join: {
        http: backend.url,
        onMessage: async (message, connection) => {
          const { room } = message as { room: string }
          if (room === 'bug') throw new Error('oops')
          if (room !== connection.sub) throw new NotYours()
        }
      }
    }
  }, {}, { logger: { level: 'error', stream: { write: (line: string) => { lines.push(JSON.parse(line)) } } } })
  const ws = await connect(gateway.url, tokenHeaders({ sub: 'r1' }))
  t.same((await ask(ws, { action: 'join', room: 'r1' })).data, { action: 'join', room: 'r1', stamped: true })
  t.same(await ask(ws, { action: 'join', room: 'r2', id: 'x' }), { type: 'error', id: 'x', route: 'join', code: 'APP_NOT_YOURS', status: 403, message: 'This room is not yours' })
  t.same(await ask(ws, { action: 'join', room: 'bug' }), { type: 'error', id: null, route: 'join', code: 'FST_WS_GATEWAY_MESSAGE_HOOK_FAILED', status: 500, message: 'The gateway failed to handle the message' })
  t.match(await ask(ws, { action: 'join', boom: true }), { code: 'FST_WS_GATEWAY_MESSAGE_HOOK_FAILED' })
  t.match(lines, [{ level: 50, msg: 'ws gateway message hook failed', hook: 'routes["join"].onMessage' }, { hook: 'onMessage', err: { message: 'registration hook bug' } }])
  t.equal(backend.requests.length, 1)
  ws.close()
})

t.test('a routeKey function, a dotted routeKey and correlationId', async (t) => {
  const backend = await startHttpBackend(t)
  const byFunction = await startMessageGateway(t, {
    routeKey: (message) => {
      const { op } = message as { op?: unknown }
      if (op === 'crash') throw new Error('bad router')
      return typeof op === 'string' ? `ops.${op}` : undefined
    },
    routes: { 'ops.ping': { http: backend.url } }
  })
  const ws = await connect(byFunction.url, tokenHeaders())
  t.match(await ask(ws, { op: 'ping', id: 1 }), { type: 'reply', id: 1, route: 'ops.ping' })
  t.match(await ask(ws, { id: 2 }), { code: 'FST_WS_GATEWAY_INVALID_MESSAGE', id: 2 })
  t.match(await ask(ws, { op: 'crash', id: 3 }), { code: 'FST_WS_GATEWAY_MESSAGE_HOOK_FAILED', id: 3 })
  ws.close()
  const dotted = await startMessageGateway(t, { routeKey: 'meta.route', correlationId: 'meta.ref', routes: { x: { http: backend.url } } })
  const ws2 = await connect(dotted.url, tokenHeaders())
  t.match(await ask(ws2, { meta: { route: 'x', ref: 'r-9' } }), { type: 'reply', id: 'r-9', route: 'x' })
  t.match(await ask(ws2, { meta: 'flat' }), { code: 'FST_WS_GATEWAY_INVALID_MESSAGE', message: 'Invalid message: no route key' })
  ws2.close()
})

t.test('message schemas use the app\'s validator: its Ajv options and shared schemas apply', async (t) => {
  const backend = await startHttpBackend(t)
  const gateway = await startMessageGateway(t, {
    schema: { type: 'object', required: ['action'] },
    routes: { add: { http: backend.url, schema: { $ref: 'amount#' } } }
  }, {}, { ajv: { customOptions: { coerceTypes: true, removeAdditional: 'all' } } }, (app) => {
    app.addSchema({ $id: 'amount', type: 'object', properties: { action: { type: 'string' }, n: { type: 'integer' } }, additionalProperties: false })
  })
  const ws = await connect(gateway.url, tokenHeaders())
  t.same((await ask(ws, { action: 'add', n: '42', extra: 'dropped' })).data, { action: 'add', n: 42 }, 'coerced and stripped as the app asked')
  t.match(await ask(ws, { action: 'add', n: 'many' }), { code: 'FST_WS_GATEWAY_INVALID_MESSAGE', message: 'Invalid message: /n must be integer' })
  t.match(await ask(ws, [1]), { code: 'FST_WS_GATEWAY_INVALID_MESSAGE' })
  ws.close()
})

t.test('a validator compiler the app set is used as it is, { error } and { value } results included', async (t) => {
  const backend = await startHttpBackend(t)
  const gateway = await startMessageGateway(t, { routes: { up: { http: backend.url, schema: 'uppercase' }, silent: { http: backend.url, schema: 'silent' } } }, {}, {}, (app) => {
    app.setValidatorCompiler(({ schema }) => (data: unknown) => {
      const { text } = data as { text?: unknown }
      if ((schema as unknown) === 'silent') return (data as { ok?: boolean }).ok === true ? {} : false
      if ((schema as unknown) !== 'uppercase') return true
      return typeof text === 'string' ? { value: { ...(data as object), text: text.toUpperCase() } } : { error: new Error('text is required') }
    })
  })
  const ws = await connect(gateway.url, tokenHeaders())
  t.same((await ask(ws, { action: 'up', text: 'shout' })).data, { action: 'up', text: 'SHOUT' })
  t.match(await ask(ws, { action: 'up' }), { code: 'FST_WS_GATEWAY_INVALID_MESSAGE', message: 'Invalid message: text is required' })
  t.same((await ask(ws, { action: 'silent', ok: true })).data, { action: 'silent', ok: true }, 'a result without value keeps the message')
  t.match(await ask(ws, { action: 'silent' }), { message: 'Invalid message: schema validation failed' })
  ws.close()
})

t.test('a schema that does not compile fails the app\'s ready with the option\'s path', async (t) => {
  await t.rejects(startMessageGateway(t, { routes: { bad: { http: 'http://127.0.0.1:1', schema: { type: 'no-such-type' } } } }), {
    code: 'FST_WS_GATEWAY_INVALID_OPTION', message: /messages\.routes\["bad"\]\.schema does not compile/
  })
})

t.test('the connection policy applies: client rate limit, maxPayload, idle timeout', async (t) => {
  const backend = await startHttpBackend(t)
  const gateway = await startMessageGateway(t, { routes: { $default: { http: backend.url } } }, { rateLimit: { messagesPerSecond: 2, onExceeded: 'close' }, maxPayload: 100, idleTimeout: 1000 })
  const flood = await connect(gateway.url, tokenHeaders())
  for (let i = 0; i < 5; i++) flood.send('{"action":"a"}')
  t.match(await closeOf(flood), { code: 1008, reason: 'rate limit' })
  // A client that floods on past that close (in one burst, before it could have seen it) is cut.
  const flooder = await connect(gateway.url, tokenHeaders())
  for (let i = 0; i < 20; i++) flooder.send('{"action":"a"}')
  t.ok([1006, 1008].includes((await closeOf(flooder)).code), 'closed, then cut')
  const big = await connect(gateway.url, tokenHeaders())
  big.send(JSON.stringify({ action: 'a', pad: 'x'.repeat(200) }))
  t.match(await closeOf(big), { code: 1009 })
  const idle = await connect(gateway.url, tokenHeaders())
  t.match(await closeOf(idle), { code: 1001, reason: 'idle timeout' })
})
