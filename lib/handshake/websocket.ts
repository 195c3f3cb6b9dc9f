import type { FastifyInstance } from 'fastify'
import fastifyWebsocket from '@fastify/websocket'
import type { ResolvedOptions } from '../options/types'
import { chooseProtocols } from './protocols'

/** @fastify/websocket, unless the app registered it already (its server is then shared). */
export async function ensureWebsocket (fastify: FastifyInstance, opts: ResolvedOptions): Promise<void> {
  if (!fastify.hasDecorator('websocketServer')) {
    await fastify.register(fastifyWebsocket, { options: { maxPayload: opts.maxPayload, perMessageDeflate: false } })
  }
  chooseProtocols(fastify.websocketServer)
}
