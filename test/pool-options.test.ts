import t from 'tap'
import { Registry } from 'prom-client'
import { validateOptions } from '../lib/options/validate'
import { DEFAULT_DNS, DEFAULT_HEALTH } from '../lib/options/defaults'
import type { WsGatewayOptions } from '../lib/options/types'

const jwt = { secret: 's' }
const backendOf = (config: unknown): ReturnType<typeof validateOptions>['backends'] extends ReadonlyMap<string, infer B> ? B : never =>
  validateOptions({ backends: { A: config as never }, jwt }).backends.get('A') as never

t.test('pool configs resolve with their defaults', async (t) => {
  const pool = backendOf({ urls: ['ws://a:1', 'wss://b:2/p'] })
  t.same(pool.source, { kind: 'static', urls: [new URL('ws://a:1'), new URL('wss://b:2/p')] })
  t.equal(pool.balance, 'round-robin')
  t.same(pool.health, DEFAULT_HEALTH)
  t.equal(pool.probe, undefined)
  t.same(backendOf({ dns: 'wss://svc.internal:9001/x' }).source, { kind: 'dns', url: new URL('wss://svc.internal:9001/x') })
  t.same(backendOf({ dns: 'dns+srv://_ws._tcp.svc.internal/socket?v=2' }).source, { kind: 'srv', name: '_ws._tcp.svc.internal', protocol: 'ws:', path: '/socket?v=2' })
  t.equal((backendOf({ dns: 'dns+srvs://_wss._tcp.svc' }).source as { protocol: string }).protocol, 'wss:')
  t.equal(backendOf({ url: 'ws://a', health: false }).health, false)
  t.same(backendOf({ url: 'ws://a', health: { ejectTime: 500_000 } }).health, { failures: 3, ejectTime: 500_000, maxEjectTime: 500_000 },
    'maxEjectTime is at least ejectTime')
  t.same(backendOf({ url: 'ws://a', balance: 'hash-sub', probe: {} }).probe, { interval: 10_000, timeout: 2_000, httpPath: undefined })
  const opts = validateOptions({ backends: { A: 'ws://a' }, jwt })
  t.same(opts.dns, DEFAULT_DNS)
  t.equal(opts.metrics, undefined)
  t.same(validateOptions({ backends: { A: 'ws://a' }, jwt, metrics: true }).metrics, {})
  const registry = new Registry()
  t.equal(validateOptions({ backends: { A: 'ws://a' }, jwt, metrics: { registry, route: '/metrics' } }).metrics?.registry, registry)
  t.same(validateOptions({ backends: { A: 'ws://a' }, jwt, dns: { servers: ['127.0.0.1:5353', '[::1]:53'], minInterval: 100_000 } }).dns,
    { servers: ['127.0.0.1:5353', '[::1]:53'], minInterval: 100_000, maxInterval: 100_000, timeout: 2000, tries: 2 })
})

t.test('bad pool, discovery and metrics options are refused with their path', async (t) => {
  const cases: Array<[unknown, RegExp]> = [
    [{ url: 'ws://a', urls: ['ws://b'] }, /backends\["A"\] must have exactly one of url, urls and dns/],
    [{ headers: {} }, /backends\["A"\] must have exactly one of url, urls and dns/],
    [{ urls: 'ws://a' }, /backends\["A"\].urls must be a non-empty array/],
    [{ urls: ['ws://a', 'http://b'] }, /backends\["A"\].urls\[1\] must be a ws: or wss: URL/],
    [{ urls: ['ws://a', 'ws://a'] }, /backends\["A"\].urls must not repeat a URL/],
    [{ dns: 'http://svc' }, /backends\["A"\].dns must be a ws: or wss: URL/],
    [{ dns: 'ws://u:p@svc' }, /backends\["A"\].dns must not carry credentials/],
    [{ dns: 'ws://10.0.0.1:9001' }, /backends\["A"\].dns needs a host name to resolve/],
    [{ dns: 'dns+srv://_ws._tcp.svc:53' }, /backends\["A"\].dns must be dns\+srv:\/\/_service._proto.name/],
    [{ url: 'ws://a', balance: 'random' }, /backends\["A"\].balance must be one of round-robin, least-connections, hash-sub/],
    [{ url: 'ws://a', health: 1 }, /backends\["A"\].health must be an object or false/],
    [{ url: 'ws://a', health: { fails: 1 } }, /unknown option "backends\["A"\].health.fails"/],
    [{ url: 'ws://a', health: { failures: 0 } }, /backends\["A"\].health.failures must be an integer >= 1/],
    [{ url: 'ws://a', health: { ejectTime: 100, maxEjectTime: 50 } }, /backends\["A"\].health.maxEjectTime must be an integer from 100 to 2147483647 \(ms\)/],
    [{ url: 'ws://a', health: { ejectTime: 2 ** 31 } }, /backends\["A"\].health.ejectTime must be an integer from 1 to 2147483647/],
    [{ url: 'ws://a', probe: true }, /backends\["A"\].probe must be an object/],
    [{ url: 'ws://a', probe: { path: '/' } }, /unknown option "backends\["A"\].probe.path"/],
    [{ url: 'ws://a', probe: { httpPath: 'healthz' } }, /backends\["A"\].probe.httpPath must be a path starting with "\/"/],
    [{ url: 'ws://a', probe: { interval: 0 } }, /backends\["A"\].probe.interval must be an integer from 1 to 2147483647 \(ms\)/]
  ]
  for (const [config, message] of cases) {
    t.throws(() => validateOptions({ backends: { A: config as never }, jwt }), { code: 'FST_WS_GATEWAY_INVALID_OPTION', message }, String(message))
  }
  const gateway: Array<[Partial<WsGatewayOptions>, RegExp]> = [
    [{ dns: [] as never }, /dns must be an object/],
    [{ dns: { server: [] } as never }, /unknown option "dns.server"/],
    [{ dns: { servers: [] } }, /dns.servers must be a non-empty array of IP addresses/],
    [{ dns: { servers: ['dns.example'] } }, /dns.servers must be a non-empty array of IP addresses/],
    [{ dns: { minInterval: 0 } }, /dns.minInterval must be an integer from 1 to 2147483647 \(ms\)/],
    [{ dns: { minInterval: 5000, maxInterval: 1000 } }, /dns.maxInterval must be an integer from 5000 to 2147483647 \(ms\)/],
    [{ metrics: false as never }, /metrics must be true or an object/],
    [{ metrics: { registry: {} } as never }, /metrics.registry must be a prom-client Registry/],
    [{ metrics: { route: 'metrics' } }, /metrics.route must be a string starting with "\/"/],
    [{ metrics: { prefix: 'x' } as never }, /unknown option "metrics.prefix"/]
  ]
  for (const [options, message] of gateway) {
    t.throws(() => validateOptions({ backends: { A: 'ws://a' }, jwt, ...options }), { code: 'FST_WS_GATEWAY_INVALID_OPTION', message }, String(message))
  }
})
