import t from 'tap'
import { randomText } from '../lib/random'
import { newConnectionId, nodeOf } from '../lib/registry/ids'

t.test('randomText hands out fresh bytes of the asked size, across refills of its pool', async (t) => {
  // 1,000 draws of 12 bytes go through the 4 KiB pool almost three times.
  const seen = new Set<string>()
  for (let i = 0; i < 1000; i++) {
    const text = randomText(12, 'base64url')
    t.equal(Buffer.from(text, 'base64url').length, 12)
    seen.add(text)
  }
  t.equal(seen.size, 1000, 'no text twice')
  const key = randomText(16, 'base64')
  t.match(key, /^[+/0-9A-Za-z]{22}==$/, 'a Sec-WebSocket-Key')
})

t.test('a draw that does not fit in what is left of the pool comes whole from a fresh one', async (t) => {
  const sizes = [4000, 200, 4096]
  const texts = sizes.map((size) => randomText(size, 'base64'))
  t.same(texts.map((text) => Buffer.from(text, 'base64').length), sizes)
  t.not(texts[0].slice(0, 100), texts[2].slice(0, 100), 'a refill is fresh bytes')
})

t.test('connection ids keep their shape', async (t) => {
  const id = newConnectionId('node_1')
  t.equal(nodeOf(id), 'node_1')
  t.not(newConnectionId('node_1'), id)
})
