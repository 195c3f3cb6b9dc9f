import type { FastifyInstance } from 'fastify'
import { register as defaultRegistry } from 'prom-client'
import type { ResolvedOptions } from '../options/types'
import { attachMetrics, type MetricsSource, type PathMetrics } from './metrics'

/**
 * Registers a gateway's series when `metrics` is set: in the given registry or prom-client's
 * default one (the app's, when it uses the same prom-client), with a scrape route if asked for.
 * Returns what the gateway's route reports to; the series leave the registry when the app closes.
 */
export function setupMetrics (fastify: FastifyInstance, opts: ResolvedOptions, source: MetricsSource): PathMetrics | undefined {
  if (opts.metrics === undefined) return undefined
  const registry = opts.metrics.registry ?? defaultRegistry
  const { path, detach } = attachMetrics(registry, source)
  fastify.addHook('onClose', async () => { detach() })
  if (opts.metrics.route !== undefined) {
    fastify.get(opts.metrics.route, async (_request, reply) => {
      reply.type(registry.contentType)
      return await registry.metrics()
    })
  }
  return path
}
