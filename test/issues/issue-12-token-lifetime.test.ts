import t, { type Test } from 'tap'
import fastifyJwt from '@fastify/jwt'
import { Deadlines } from '../../lib/handshake/auth/expiry'
import { BACKEND_ID, SECRET, closeOf, connect, handshake, nextMessage, sign, startBackend, startGateway, startPair } from '../helpers'

/*
 * Issue 12 §4: a token within the clock tolerance got a 101 and was closed 8 ms later; a token
 * valid for more than ~24.8 days got no expiry timer at all; the backend lookup (404) ran before
 * `authorize` (403), so any token holder could probe which backend IDs exist.
 */

/** Connects with a token that expired `ago` seconds ago: it must relay, then close no earlier than exp + tolerance. */
async function expiredWithinTolerance (t: Test, url: string, ago: number, toleranceMs: number): Promise<void> {
  const exp = Math.floor(Date.now() / 1000) - ago
  const ws = await connect(url, { id: BACKEND_ID, authorization: `Bearer ${sign({ exp })}` })
  const closed = closeOf(ws)
  ws.send('still here')
  t.equal((await nextMessage(ws)).data.toString(), 'still here', 'open and relaying after the handshake accepted it')
  t.same(await closed, { code: 1008, reason: 'token expired' })
  // Timers may fire up to a millisecond early; the deadline is the instant the handshake refuses.
  t.ok(Date.now() >= exp * 1000 + toleranceMs - 2, 'closed no earlier than exp + tolerance')
}

t.test('clockTolerance and closeOnTokenExpiry agree: closed at exp + tolerance, when the handshake starts refusing', async (t) => {
  const { gateway } = await startPair(t) // clockTolerance 5 s by default
  await expiredWithinTolerance(t, gateway.url, 2, 5000)
  const exp = Math.floor(Date.now() / 1000) - 6
  const late = await handshake(gateway.port, { id: BACKEND_ID, authorization: `Bearer ${sign({ exp })}` })
  t.equal(late.body.code, 'FST_WS_GATEWAY_TOKEN_EXPIRED', 'past the tolerance the handshake refuses')
})

t.test('the same rule with the app\'s own @fastify/jwt and its verify.clockTolerance', async (t) => {
  const backend = await startBackend(t)
  const gateway = await startGateway(t, { backends: { [BACKEND_ID]: backend.url }, heartbeatInterval: 0 }, {}, async (app) => {
    await app.register(fastifyJwt, { secret: SECRET, verify: { clockTolerance: 3000 } })
  })
  await expiredWithinTolerance(t, gateway.url, 1, 3000)
})

t.test('Deadlines: one timer calls each item at its deadline, in order, chaining timers beyond the longest; cancelled items never fire', async (t) => {
  // The timer is unref'd (it must not keep a server alive); this one keeps the test alive.
  const keepAlive = setInterval(() => {}, 1000)
  t.teardown(() => clearInterval(keepAlive))
  const calls: Array<{ item: string, at: number }> = []
  let done: () => void = () => {}
  const deadlines = new Deadlines<string>((item) => {
    calls.push({ item, at: Date.now() })
    if (item === 'last') done()
  }, 25)
  const now = Date.now()
  const due = { late: now + 150, first: now + 40, middle: now + 90, last: now + 200, cancelled: now + 60, alsoCancelled: now + 170 }
  const handles = Object.fromEntries(Object.entries(due).map(([item, at]) => [item, deadlines.add(at, item)]))
  t.equal(deadlines.size, 6)
  deadlines.delete(handles.cancelled)
  deadlines.delete(handles.cancelled)
  const finished = new Promise<void>((resolve) => { done = resolve })
  await new Promise((resolve) => setTimeout(resolve, 100))
  deadlines.delete(handles.alsoCancelled)
  await finished
  t.same(calls.map(({ item }) => item), ['first', 'middle', 'late', 'last'], 'in deadline order, the cancelled ones left out')
  for (const { item, at } of calls) t.ok(at >= due[item as keyof typeof due], `${item} not before its deadline (steps of 25 ms chained)`)
  t.equal(deadlines.size, 0)
  deadlines.delete(handles.first)
  t.equal(deadlines.size, 0, 'cancelling one that was called does nothing')

  const past = await new Promise<number>((resolve) => { new Deadlines<number>(resolve).add(Date.now() - 1000, 7) })
  t.equal(past, 7, 'a deadline already passed is called at once')
})

t.test('authorize runs before the backend lookup: a refused ID is 403 whether or not it exists, and is never resolved', async (t) => {
  const backend = await startBackend(t)
  const resolved: string[] = []
  const gateway = await startGateway(t, {
    backends: { [BACKEND_ID]: backend.url, Backend_Other: backend.url },
    jwt: { secret: SECRET },
    resolveBackend: (id) => { resolved.push(id); return undefined },
    authorize: (_request, id) => id === BACKEND_ID || id === 'Allowed_Ghost'
  })
  const as = (id: string): Record<string, string> => ({ id, authorization: `Bearer ${sign()}` })
  for (const id of ['Backend_Other', 'Does_Not_Exist']) {
    const res = await handshake(gateway.port, as(id))
    t.equal(res.status, 403, id)
    t.equal(res.body.code, 'FST_WS_GATEWAY_FORBIDDEN', id)
  }
  t.same(resolved, [], 'resolveBackend never ran for a refused ID')
  t.equal((await handshake(gateway.port, as('Allowed_Ghost'))).status, 404, 'an allowed but unknown ID is still 404')
  t.same(resolved, ['Allowed_Ghost'])
})
