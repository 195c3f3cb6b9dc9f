import type { FastifyPluginAsync } from 'fastify'

/** The plugin from a loaded dist/index.js, whether it is CommonJS (module.exports + .default) or an ES module. */
export function pluginFrom (loaded: unknown, distEntry: string): FastifyPluginAsync<Record<string, unknown>> {
  let candidate = (loaded as { default?: unknown }).default ?? loaded
  if (typeof candidate !== 'function') candidate = (candidate as { default?: unknown }).default
  if (typeof candidate !== 'function') throw new Error(`${distEntry} has no default export plugin`)
  return candidate as FastifyPluginAsync<Record<string, unknown>>
}
