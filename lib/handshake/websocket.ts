import { EventEmitter } from 'node:events'
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import fastifyWebsocket from '@fastify/websocket'
import { chooseProtocols } from './protocols'

/** Per HTTP server: the emitter the first gateway's own @fastify/websocket takes upgrades from. */
const kUpgrades = Symbol('fastify-ws-gateway.upgrades')
type GatewayServer = FastifyInstance['server'] & { [kUpgrades]?: EventEmitter }

/**
 * Gives the gateway's route (registered in `scope`, the gateway's own context) a WebSocket server
 * without changing the app's WebSocket routes, whichever order things are registered in:
 * - When the app's @fastify/websocket is visible in `scope` (registered before the gateway, in an
 *   enclosing context), its server is shared: its own hooks already handle the gateway's route.
 * - Otherwise the gateway registers @fastify/websocket inside its own context, where its
 *   decorators never reach the app — an app may register its own after the gateway — and its
 *   server options (no compression, no client tracking) apply to the gateway's route only.
 *
 * Every @fastify/websocket listens for upgrades and routes each through Fastify's app-wide router,
 * so a second listener on the same server routes every upgrade twice (Node's
 * ERR_HTTP_SOCKET_ASSIGNED). The gateway's own ones therefore listen on an emitter instead (see
 * `upgradeSource`).
 */
export async function ensureWebsocket (scope: FastifyInstance): Promise<void> {
  if (!scope.hasDecorator('websocketServer')) {
    const server = upgradeSource(scope) as FastifyInstance['server']
    await scope.register(fastifyWebsocket, { options: { server, perMessageDeflate: false, clientTracking: false } })
  }
  chooseProtocols(scope.websocketServer)
}

/**
 * Where a gateway's own @fastify/websocket takes its upgrades from. The first gateway on a server
 * gets an emitter that is fed the server's upgrades once the app is ready — unless something
 * else listens for them by then (normally the app's own @fastify/websocket, which routes every
 * upgrade, the gateways' included). Later gateways get an emitter nothing feeds: the first one's
 * routing reaches their routes as well.
 */
function upgradeSource (scope: FastifyInstance): EventEmitter {
  const server = scope.server as GatewayServer
  if (server[kUpgrades] !== undefined) return new EventEmitter()
  const upgrades = new EventEmitter()
  server[kUpgrades] = upgrades
  const forward = (request: IncomingMessage, socket: Duplex, head: Buffer): void => {
    upgrades.emit('upgrade', request, socket, head)
    // A route that does not upgrade (an app route, a 404) answers on the response @fastify/websocket
    // gave the socket (Node links it as `_httpMessage`). Only @fastify/websocket's own onResponse
    // hook would then close the socket, and only for routes of a context it is registered in: the
    // gateway's. The socket is closed once any answer is sent; an upgrade never ends the response.
    const response = (socket as Duplex & { _httpMessage: ServerResponse })._httpMessage
    response.once('finish', () => socket.destroy())
  }
  scope.addHook('onReady', async () => {
    if (server.listenerCount('upgrade') === 0) server.on('upgrade', forward)
  })
  // Added before @fastify/websocket's own preClose, which stops listening on `upgrades`: from
  // then on upgrades reach Fastify as plain requests, and the gateway answers 503 while closing.
  scope.addHook('preClose', async () => { server.removeListener('upgrade', forward) })
  return upgrades
}
