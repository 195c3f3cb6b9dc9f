/*
 * `npm start`: the whole sample in one process. It makes a throw-away certificate and secret,
 * starts the three backends and the gateway, runs the client against each backend in turn, shows
 * the refusals, stops everything and exits (0 when every step went as expected).
 *
 * The pieces run alone too: `npm run example:backends`, `example:gateway`, `example:client`.
 */
import { runClient, signToken } from './client'
import { BACKEND_IDS, print, randomSecret, readConfig, stopOnSignal, type ExampleConfig, type Write } from './config'
import { startBackends } from './backends'
import { startGateway } from './gateway'
import { messageOptions, runMessageClient, startMessageBackends } from './messages'
import { createCertificate } from './tls'

/**
 * Runs the sample; everything it started is stopped before it returns or throws.
 *
 * @example
 * ```ts
 * const report = await runSample(readConfig({ GATEWAY_PORT: '0' }), { write: () => {} })
 * ```
 */
export async function runSample (config: ExampleConfig, options: { write: Write, onStart?: (stop: () => Promise<void>) => void }): Promise<Awaited<ReturnType<typeof runClient>> & { messages: unknown[] }> {
  const { write } = options
  const [tls, secret] = [await createCertificate(), randomSecret()]
  const backends = await startBackends(config.host, config.backendPorts)
  const messageBackends = await startMessageBackends(config.host)
  const stops = [backends.close, messageBackends.close]
  const stop = async (): Promise<void> => { await Promise.all(stops.map(async (s) => await s())) }
  try {
    // The gateway's logger at 'warn' keeps the client's story readable; it still shows problems.
    const messages = { options: messageOptions(messageBackends), redisUrl: messageBackends.redisUrl }
    const gateway = await startGateway({ secret, tls, backends: backends.urls, messages, logger: { level: 'warn' }, host: config.host, port: config.gatewayPort })
    stops.unshift(gateway.close)
    options.onStart?.(stop)
    write(`backends ${BACKEND_IDS.map((id) => `${id} ${backends.urls[id]}`).join(', ')}\n`)
    write(`gateway  ${gateway.url} (REST: https://localhost:${gateway.port}/health, /backends)\n\n`)
    const report = await runClient({ url: gateway.url, ca: tls.cert, secret, write })
    const token = signToken(secret, { sub: 'demo-user', backends: [] })
    const url = gateway.url.replace(/\/ws$/, '/api')
    return { ...report, messages: await runMessageClient({ url, ca: tls.cert, token, queue: messageBackends.redisUrl !== undefined, write }) }
  } finally {
    await stop()
  }
}

/* c8 ignore start -- only when this file is run directly (test/example.test.ts spawns it) */
if (require.main === module) {
  runSample(readConfig(), { write: print, onStart: (stop) => { stopOnSignal(stop) } }).then(() => {
    print('\ndone\n')
  }, (err) => {
    process.stderr.write(`\nsample failed: ${String(err)}\n`)
    process.exitCode = 1
  })
}
/* c8 ignore stop */
