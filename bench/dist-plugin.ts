/**
 * The gateway as every bench child runs it: the plugin loaded from a path handed down by an
 * orchestrator (the built dist/index.js, the code users get from npm; another build to compare;
 * or lib/index.ts through the tsx loader), registered with one backend and HS256 JWT
 * authentication. The import is dynamic so that type-checking bench/ does not need a build.
 */
import Fastify from 'fastify'
import type { FastifyInstance, FastifyPluginAsync } from 'fastify'
import { pathToFileURL } from 'node:url'

/** The gateway plugin, whether the entry is CommonJS (module.exports + .default) or an ES module. */
export async function loadPlugin (entry: string): Promise<FastifyPluginAsync<Record<string, unknown>>> {
  const loaded: unknown = await import(pathToFileURL(entry).href)
  let candidate = (loaded as { default?: unknown }).default ?? loaded
  if (typeof candidate !== 'function') candidate = (candidate as { default?: unknown }).default
  if (typeof candidate !== 'function') throw new Error(`${entry} has no default export plugin`)
  return candidate as FastifyPluginAsync<Record<string, unknown>>
}

/**
 * A Fastify app (not yet listening) with the gateway on `/ws`, its one backend `Backend_BENCH`,
 * and `extra` options on top (e.g. `{ engine: 'ws' }`, or `cluster`).
 */
export async function gatewayApp (entry: string, backendUrl: string, secret: string, extra: Record<string, unknown>): Promise<FastifyInstance> {
  const wsGateway = await loadPlugin(entry)
  const app = Fastify({ logger: false })
  await app.register(wsGateway, {
    path: '/ws',
    backends: { Backend_BENCH: backendUrl },
    jwt: { secret },
    ...extra
  })
  return app
}
