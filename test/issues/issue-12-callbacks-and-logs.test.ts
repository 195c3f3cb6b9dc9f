import t from 'tap'
import { BACKEND_ID, SECRET, authHeaders, captureLogs, connect, handshake, sign, startBackend, startGateway, startPair } from '../helpers'

/*
 * Issue 12 §3: a throwing `rewriteRequestHeaders` or `allowedOrigins` function answered 500 with
 * its own text, and `?access%5Ftoken=<jwt>` authenticated while the log showed the token.
 */

t.test('rewriteRequestHeaders that throws or returns what Node cannot send: a logged, coded 500 without text', async (t) => {
  const { logger, lines } = captureLogs()
  const backend = await startBackend(t)
  const outputs: Record<string, () => unknown> = {
    throws: () => { throw new Error('secret-service is down at 10.1.2.3') },
    nothing: () => undefined,
    'bad value': () => ({ 'x-a': 'line\r\nx-admin: 1' }),
    'bad name': () => ({ 'bad name': 'x' }),
    'not a string': () => ({ 'x-a': 42 }),
    'array of non-strings': () => ({ 'x-a': ['ok', 1] })
  }
  const gateway = await startGateway(t, {
    backends: { [BACKEND_ID]: backend.url },
    jwt: { secret: SECRET },
    rewriteRequestHeaders: (request, headers) => {
      const mode = request.headers['x-mode'] as string
      return mode === 'ok' ? { ...headers, 'x-list': ['a', 'b'] } : outputs[mode]() as typeof headers
    }
  }, { logger })
  for (const mode of Object.keys(outputs)) {
    const res = await handshake(gateway.port, authHeaders({ 'x-mode': mode }))
    t.equal(res.status, 500, mode)
    t.equal(res.body.code, 'FST_WS_GATEWAY_CALLBACK_FAILED', mode)
    t.equal(res.body.message, 'An application callback failed', mode)
  }
  t.equal(backend.requests.length, 0, 'the backend is never contacted')
  const failures = lines.filter((line) => line.msg === 'ws gateway rewriteRequestHeaders failed')
  t.equal(failures.length, Object.keys(outputs).length, 'each failure is logged')
  t.equal(failures[0].level, 50, 'at error level')
  t.match(failures[0].err, { message: /secret-service/ }, 'the cause is in the log, for the operator')
  const ok = await connect(gateway.url, authHeaders({ 'x-mode': 'ok' }))
  t.equal(backend.requests[0].headers['x-list'], 'a, b', 'string arrays are sent')
  ok.close()
})

t.test('an allowedOrigins function that throws: a coded 500 without its text', async (t) => {
  const { gateway, backend } = await startPair(t, {
    allowedOrigins: (origin) => {
      if (origin === 'https://broken.test') throw new Error('origin registry unreachable')
      return origin === 'https://app.test'
    }
  })
  const res = await handshake(gateway.port, authHeaders({ origin: 'https://broken.test' }))
  t.equal(res.status, 500)
  t.equal(res.body.code, 'FST_WS_GATEWAY_CALLBACK_FAILED')
  t.notMatch(JSON.stringify(res.body), /registry/)
  t.equal((await handshake(gateway.port, authHeaders({ origin: 'https://evil.test' }))).status, 403)
  const ok = await connect(gateway.url, authHeaders({ origin: 'https://app.test' }))
  ok.close()
  t.equal(backend.requests.length, 1)
})

t.test('tokenQuery: a percent-encoded parameter name is redacted too; the token is nowhere in the logs', async (t) => {
  const { logger, lines } = captureLogs('trace')
  const backend = await startBackend(t)
  const gateway = await startGateway(t, { backends: { [BACKEND_ID]: backend.url }, jwt: { secret: SECRET }, tokenQuery: 'access_token' }, { logger })
  const tokens = [sign({ sub: 'a' }), sign({ sub: 'b' }), sign({ sub: 'c' })]
  const urls = [
    `${gateway.url}?access%5Ftoken=${tokens[0]}&x=1`,
    `${gateway.url}?%61ccess_token=${tokens[1]}`,
    `${gateway.url}?x=1&access_%74oken=${tokens[2]}`
  ]
  for (const url of urls) {
    const ws = await connect(url, { id: BACKEND_ID })
    ws.close()
  }
  // An invalid token must not show either (its refusal is logged too).
  const refused = `${sign({ sub: 'd' }, { key: 'another-secret' })}`
  t.equal((await handshake(gateway.port, { id: BACKEND_ID }, `/ws?access%5Ftoken=${refused}`)).status, 401)
  const plain = await connect(gateway.url, { id: BACKEND_ID, authorization: `Bearer ${sign()}` })
  plain.close()
  t.equal(backend.requests.length, 4, 'each encoded name authenticated (and a URL without a query still works)')
  t.equal(backend.requests[0].url, '/?x=1', 'and was not forwarded')
  const log = lines.map((line) => JSON.stringify(line)).join('\n')
  for (const token of [...tokens, refused]) {
    t.notOk(log.includes(token), 'no token in any log line')
    t.notOk(log.includes(token.split('.')[1]), 'not even its payload')
  }
  t.match(log, '/ws?access%5Ftoken=[redacted]&x=1')
  t.match(log, '/ws?%61ccess_token=[redacted]')
})
