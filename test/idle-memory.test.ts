import t from 'tap'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { closeOf, connect, nextMessage, startPair } from './helpers'

/*
 * Issue 16 §3, idle memory: an open connection keeps what it relays with, not what its upgrade
 * was made of. The FastifyRequest and its IncomingMessage (headers, token, parser state) must be
 * collectable while the connection is open — they used to be kept by the limits slot's 'close'
 * listener, made in a scope that held the request.
 */

setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

t.test('an open connection keeps neither its FastifyRequest nor its IncomingMessage', async (t) => {
  const requests: Array<WeakRef<object>> = []
  const { gateway } = await startPair(t, {}, undefined, {}, (app) => {
    app.addHook('onRequest', async (request) => {
      requests.push(new WeakRef(request), new WeakRef(request.raw))
    })
  })
  const clients = [await connect(gateway.url), await connect(gateway.url)]
  for (const ws of clients) {
    ws.send('before')
    t.equal((await nextMessage(ws)).data.toString(), 'before')
  }
  t.equal(requests.length, 4)
  // A WeakRef keeps its target until the job that made or read it ends: collect in a later one.
  await new Promise((resolve) => setImmediate(resolve))
  gc()
  t.same(requests.map((ref) => ref.deref() === undefined), [true, true, true, true], 'all collected')
  for (const ws of clients) {
    ws.send('after')
    t.equal((await nextMessage(ws)).data.toString(), 'after', 'and the connection still relays')
    const closed = closeOf(ws)
    ws.close(1000)
    t.equal((await closed).code, 1000)
  }
})
