import type { FastifyInstance } from 'fastify'
import { Registry, sumStats, type GatewayStats, type WsGatewayStats } from './registry'

/** What the gateway adds to the Fastify instance as `fastify.wsGateway`. */
export interface WsGatewayDecorator {
  /** Connection, rejection and traffic counters, in total and per registered path. */
  stats: () => WsGatewayStats
}

declare module 'fastify' {
  interface FastifyInstance {
    wsGateway: WsGatewayDecorator
  }
}

/** The registries of every gateway registered on one app, by path. */
const kRegistries = Symbol('fastify-ws-gateway.registries')
type GatewayInstance = FastifyInstance & { [kRegistries]?: Map<string, Registry> }

/** `fastify.wsGateway`, created by the first registration and shared by the later ones. */
export function registriesOf (fastify: GatewayInstance): Map<string, Registry> {
  if (fastify[kRegistries] === undefined) {
    const registries = new Map<string, Registry>()
    fastify[kRegistries] = registries
    fastify.decorate('wsGateway', {
      stats: () => {
        const byPath: Record<string, GatewayStats> = {}
        for (const [path, registry] of registries) byPath[path] = registry.stats()
        return sumStats(byPath)
      }
    })
  }
  return fastify[kRegistries]
}
