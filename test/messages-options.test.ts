import t from 'tap'
import { validateOptions } from '../lib/options/validate'
import type { WsGatewayOptions } from '../lib/options/types'
import { DEFAULT_MAX_IN_FLIGHT, DEFAULT_MESSAGE_TIMEOUT, DEFAULT_QUEUE_MAX_LENGTH } from '../lib/options/defaults'
import { resolveRoute } from '../lib/options/messages'

/* Validation of `messages`: defaults, and a message naming every bad option. */

const jwt = { secret: 's' }
const http = 'http://127.0.0.1:1/x'

t.test('message mode: defaults filled in, routes resolved, middleware inherited', async (t) => {
  const opts = validateOptions({
    jwt,
    messages: {
      rateLimit: { messagesPerSecond: 5 },
      circuitBreaker: { failures: 3, resetAfter: 100 },
      routes: {
        a: { http },
        b: { http: { url: 'https://h/p?q=1', method: 'PATCH', timeout: 5, tls: { rejectUnauthorized: false } }, rateLimit: false, circuitBreaker: {}, timeout: 7 },
        c: { ws: { url: 'wss://h/s', headers: { k: 'v' }, servername: 'h' } }
      },
      connect: { http },
      disconnect: { http: { url: http, headers: () => ({}) } }
    }
  })
  const messages = opts.messages as NonNullable<typeof opts.messages>
  t.equal(messages.maxInFlight, DEFAULT_MAX_IN_FLIGHT)
  t.equal(messages.timeout, DEFAULT_MESSAGE_TIMEOUT)
  t.equal(messages.routeKey({ action: 'x' }, {} as never), 'x')
  t.equal(messages.routeKey({ action: 1 }, {} as never), undefined)
  t.equal(messages.correlationId({ id: 'c' }), 'c')
  t.equal(messages.correlationId('not an object'), undefined)
  t.match(messages.routes.get('a'), { target: { kind: 'http', method: 'POST', timeout: undefined }, rateLimit: { messagesPerSecond: 5 }, circuitBreaker: { failures: 3, resetAfter: 100 }, timeout: DEFAULT_MESSAGE_TIMEOUT })
  t.match(messages.routes.get('b'), { target: { method: 'PATCH', timeout: 5, tls: { rejectUnauthorized: false } }, rateLimit: false, circuitBreaker: { failures: 5, resetAfter: 10_000 }, timeout: 7 })
  t.match(messages.routes.get('c'), { target: { kind: 'ws', headers: { k: 'v' }, tls: { servername: 'h' } } })
  t.equal(messages.connect?.url.href, http)
  t.match(validateOptions({ jwt, messages: { routes: { q: { queue: { stream: 's' } } } }, cluster: { redis: {} } }).messages?.routes.get('q'), { target: { maxLength: DEFAULT_QUEUE_MAX_LENGTH } })
})

t.test('every bad message-mode option is refused with a message naming it', async (t) => {
  const cases: Array<[unknown, RegExp]> = [
    [{ messages: 'x' }, /messages must be an object/],
    [{ messages: { typo: 1 } }, /unknown option "messages.typo"/],
    [{ messages: {}, backends: { A: 'ws://h' } }, /backends is for relay mode/],
    [{ messages: {}, idHeader: 'x' }, /idHeader is for relay mode/],
    [{ messages: { routeKey: '' } }, /messages.routeKey must be a dotted path/],
    [{ messages: { routeKey: 'a..b' } }, /messages.routeKey must be a dotted path/],
    [{ messages: { correlationId: 3 } }, /messages.correlationId must be a dotted path/],
    [{ messages: { maxInFlight: 0 } }, /messages.maxInFlight must be an integer >= 1/],
    [{ messages: { timeout: 'x' } }, /messages.timeout must be an integer from 1 to 2147483647 \(ms\)/],
    [{ messages: { onMessage: 1 } }, /messages.onMessage must be a function/],
    [{ messages: { rateLimit: true } }, /messages.rateLimit must be an object or false/],
    [{ messages: { rateLimit: {} } }, /messages.rateLimit.messagesPerSecond is required/],
    [{ messages: { rateLimit: { messagesPerSecond: 1, bytes: 2 } } }, /unknown option "messages.rateLimit.bytes"/],
    [{ messages: { rateLimit: { messagesPerSecond: 0 } } }, /messages.rateLimit.messagesPerSecond must be an integer >= 1/],
    [{ messages: { circuitBreaker: 5 } }, /messages.circuitBreaker must be an object or false/],
    [{ messages: { circuitBreaker: { failures: 0 } } }, /messages.circuitBreaker.failures must be an integer >= 1/],
    [{ messages: { circuitBreaker: { resetAfter: 2 ** 31 } } }, /messages.circuitBreaker.resetAfter must be an integer from 1 to/],
    [{ messages: { routes: [] } }, /messages.routes must be an object of routes by key/],
    [{ messages: { routes: { a: 1 } } }, /messages.routes\["a"\] must be an object/],
    [{ messages: { routes: { a: { http, extra: 1 } } } }, /unknown option "messages.routes\["a"\].extra"/],
    [{ messages: { routes: { a: {} } } }, /messages.routes\["a"\] must have exactly one of http, ws, queue/],
    [{ messages: { routes: { a: { http, ws: 'ws://h' } } } }, /must have exactly one of http, ws, queue/],
    [{ messages: { routes: { a: { http: 1 } } } }, /messages.routes\["a"\].http must be a URL string or an object with a url/],
    [{ messages: { routes: { a: { http: 'ws://h' } } } }, /messages.routes\["a"\].http.url must be a http: or https: URL/],
    [{ messages: { routes: { a: { http: 'not a url' } } } }, /messages.routes\["a"\].http.url must be a http: or https: URL/],
    [{ messages: { routes: { a: { http: 'http://h/#f' } } } }, /http.url must be a http: or https: URL without a #fragment/],
    [{ messages: { routes: { a: { http: { url: http, method: 'GET' } } } } }, /http.method must be one of POST, PUT, PATCH, DELETE/],
    [{ messages: { routes: { a: { http: { url: http, headers: { x: 1 } } } } } }, /http.headers must be an object of string values or a function/],
    [{ messages: { routes: { a: { http: { url: http, timeout: 0 } } } } }, /http.timeout must be an integer from 1 to/],
    [{ messages: { routes: { a: { http: { url: http, tls: 'yes' } } } } }, /http.tls must be an object of TLS options/],
    [{ messages: { routes: { a: { http: { url: http, retries: 2 } } } } }, /unknown option "messages.routes\["a"\].http.retries"/],
    [{ messages: { routes: { a: { ws: 7 } } } }, /messages.routes\["a"\].ws must be a URL string or an object with a url/],
    [{ messages: { routes: { a: { ws: 'http://h' } } } }, /ws.url must be a ws: or wss: URL/],
    [{ messages: { routes: { a: { queue: 's' } } } }, /messages.routes\["a"\].queue must be an object with a stream/],
    [{ messages: { routes: { a: { queue: { stream: '' } } } }, cluster: { redis: {} } }, /queue.stream must be a non-empty string/],
    [{ messages: { routes: { a: { queue: { stream: 's', replyTimeout: -1 } } } }, cluster: { redis: {} } }, /queue.replyTimeout must be an integer from 1 to/],
    [{ messages: { routes: { a: { queue: { stream: 's', maxLength: 0 } } } }, cluster: { redis: {} } }, /queue.maxLength must be an integer >= 1/],
    [{ messages: { routes: { a: { queue: { stream: 's', group: 'g' } } } }, cluster: { redis: {} } }, /unknown option "messages.routes\["a"\].queue.group"/],
    [{ messages: { routes: { a: { http, onMessage: 'x' } } } }, /messages.routes\["a"\].onMessage must be a function/],
    [{ messages: {}, dropHeaders: ['x-a'] }, /dropHeaders is for relay mode/],
    [{ messages: { routes: { a: { http, timeout: 0 } } } }, /messages.routes\["a"\].timeout must be an integer from 1 to/],
    [{ messages: { connect: 'x' } }, /messages.connect must be an object with http/],
    [{ messages: { connect: { ws: 'ws://h' } } }, /unknown option "messages.connect.ws"/],
    [{ messages: { disconnect: { http: 'ftp://h' } } }, /messages.disconnect.http.url must be a http: or https: URL/]
  ]
  for (const [options, message] of cases) {
    t.throws(() => validateOptions({ jwt, ...options as object } as WsGatewayOptions), { code: 'FST_WS_GATEWAY_INVALID_OPTION', message }, String(message))
  }
})

t.test('a route key must be a non-empty string', async (t) => {
  t.throws(() => resolveRoute('', { http }, { timeout: 1, rateLimit: false, circuitBreaker: false }), { message: /a route key must be a non-empty string/ })
})
