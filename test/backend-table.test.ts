import t from 'tap'
import type { FastifyRequest } from 'fastify'
import Fastify from 'fastify'
import { validateOptions } from '../lib/options/validate'
import { BackendTable } from '../lib/upstream/backends'
import { endpointOptions } from '../lib/upstream/attempt'

const log = Fastify().log
const request = { log } as unknown as FastifyRequest

t.test('the resolver\'s backends are kept for the 1000 IDs asked most recently', async (t) => {
  const table = new BackendTable(validateOptions({ resolveBackend: (id) => `ws://127.0.0.1:1/${id}`, jwt: { secret: 's' } }), log)
  t.teardown(() => table.close())
  const first = await table.resolve(request, 'id-0')
  t.equal(await table.resolve(request, 'id-0'), first, 'asked again: the same backend')
  for (let i = 1; i <= 1000; i++) await table.resolve(request, `id-${i}`)
  t.equal(table.states().size, 1000)
  t.not(await table.resolve(request, 'id-0'), first, 'the least recently asked was let go')
  t.same(first.pool.states(), { healthy: 0, probation: 0, ejected: 0, draining: 0 }, 'and its pool drained')
})

t.test('an endpoint found through DNS is dialed at its address, whichever way the socket asks', async (t) => {
  const backend = validateOptions({ backends: { A: 'ws://a' }, jwt: { secret: 's' } }).backends.get('A')
  const { lookup } = endpointOptions(backend as never, { key: 'k', url: new URL('ws://svc:1'), pinned: { address: '::1', family: 6 }, priority: 0, weight: 1 })
  const one = await new Promise((resolve) => lookup?.('svc', {}, (_err, address, family) => resolve([address, family])))
  t.same(one, ['::1', 6])
  const all = await new Promise((resolve) => lookup?.('svc', { all: true }, (_err, addresses) => resolve(addresses)))
  t.same(all, [{ address: '::1', family: 6 }])
})
