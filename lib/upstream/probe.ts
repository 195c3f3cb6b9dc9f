import http from 'node:http'
import https from 'node:https'
import WebSocket from 'ws'
import type { ResolvedBackend } from '../options/types'
import type { PoolBackend } from './failover'
import type { EndpointTarget } from './pool'
import { endpointOptions } from './attempt'

type Probe = NonNullable<ResolvedBackend['probe']>

/** A WebSocket handshake, closed with 1000 once open. Any HTTP answer below 500 is a live backend. */
async function probeWebSocket (backend: ResolvedBackend, endpoint: EndpointTarget, timeout: number): Promise<boolean> {
  const ws = new WebSocket(endpoint.url, {
    ...endpointOptions(backend, endpoint),
    headers: { ...backend.headers },
    perMessageDeflate: false,
    followRedirects: false,
    handshakeTimeout: timeout
  })
  return await new Promise((resolve) => {
    ws.once('open', () => {
      ws.close(1000)
      resolve(true)
    })
    ws.once('unexpected-response', (_req, res) => {
      res.resume()
      ws.terminate()
      resolve((res.statusCode as number) < 500)
    })
    ws.on('error', () => resolve(false))
  })
}

/** An HTTP GET of `path` on the endpoint; 2xx and 3xx are healthy. */
async function probeHttp (backend: ResolvedBackend, endpoint: EndpointTarget, path: string, timeout: number): Promise<boolean> {
  const { url } = endpoint
  const get = url.protocol === 'wss:' ? https.get : http.get
  return await new Promise((resolve) => {
    const request = get({
      ...endpointOptions(backend, endpoint),
      host: url.hostname.replace(/^\[(.*)\]$/, '$1'),
      port: url.port,
      path,
      headers: { ...backend.headers },
      agent: false,
      timeout
    }, (res) => {
      res.resume()
      resolve((res.statusCode as number) < 400)
    })
    request.once('timeout', () => request.destroy(new Error('probe timed out')))
    request.once('error', () => resolve(false))
  })
}

/**
 * Active health checks of a pool: every `interval` ms each endpoint that is not draining is probed
 * (one probe at a time per endpoint). A failed probe counts as a connect failure; a successful one
 * brings an ejected endpoint back on probation, or ends a probation.
 */
export class Prober {
  private readonly timer: NodeJS.Timeout
  private readonly probing = new Set<string>()

  constructor (private readonly owner: PoolBackend, private readonly probe: Probe) {
    this.timer = setInterval(() => this.tick(), probe.interval).unref()
  }

  private tick (): void {
    const { config, pool } = this.owner
    for (const endpoint of pool.list()) {
      const { key } = endpoint.target
      if (endpoint.draining || this.probing.has(key)) continue
      this.probing.add(key)
      const { httpPath, timeout } = this.probe
      const probe = httpPath === undefined
        ? probeWebSocket(config, endpoint.target, timeout)
        : probeHttp(config, endpoint.target, httpPath, timeout)
      probe.then((healthy) => {
        this.probing.delete(key)
        if (healthy) endpoint.health.success()
        else endpoint.health.failure()
      })
    }
  }

  stop (): void {
    clearInterval(this.timer)
  }
}
