import type { IncomingMessage } from 'node:http'
import type { WebSocketServer } from 'ws'

/** Where the backend's chosen subprotocol waits for the client's upgrade (see `chooseProtocols`). */
export const kProtocol = Symbol('fastify-ws-gateway.protocol')
/** The connection id a gateway upgrade announces in its 101 response (`x-connection-id`). */
export const kConnectionId = Symbol('fastify-ws-gateway.connectionId')
const kChoosesProtocols = Symbol('fastify-ws-gateway.choosesProtocols')
export type GatewayMessage = IncomingMessage & { [kProtocol]?: string | false, [kConnectionId]?: string }

/**
 * Makes the shared WebSocket server answer a gateway upgrade the gateway's way: with the
 * subprotocol the backend chose — or none, when it chose none — instead of ws's default (the
 * client's first offer), and with the connection's id in `x-connection-id`. Upgrades of the app's
 * other WebSocket routes keep the app's own `handleProtocols` and headers.
 */
export function chooseProtocols (wss: WebSocketServer & { [kChoosesProtocols]?: true }): void {
  if (wss[kChoosesProtocols] === true) return
  wss[kChoosesProtocols] = true
  const previous = wss.options.handleProtocols
  wss.options.handleProtocols = (protocols: Set<string>, req: GatewayMessage) => {
    if (kProtocol in req) return req[kProtocol] as string | false
    // ws defaults the option to null, and then picks the first offer (it asks only when offered).
    return typeof previous === 'function' ? previous(protocols, req) : protocols.values().next().value as string
  }
  wss.on('headers', (headers: string[], req: GatewayMessage) => {
    if (req[kConnectionId] !== undefined) headers.push(`x-connection-id: ${req[kConnectionId]}`)
  })
}
