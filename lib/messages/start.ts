import type WebSocket from 'ws'
import type { GatewayConnection } from '../options/message-types'
import { RelayConnection } from '../relay/connection'
import { capMaxPayload } from '../relay/passthrough/ws-internals'
import type { Connection, RelaySettings } from '../relay/types'
import { MessageEngine } from './engine'
import type { MessageRouter } from './router'

/**
 * Starts message mode on an upgraded client: the message engine under the connection policy both
 * modes share (idle timer, rate limit, slow consumer, shutdown). When it ends, the close is
 * logged and the `disconnect` hook sent.
 */
export function startMessages (socket: WebSocket, router: MessageRouter, identity: GatewayConnection, settings: RelaySettings): Connection {
  // The client's messages are capped at this registration's `maxPayload` (1009), as in relay mode.
  capMaxPayload(socket, settings.maxPayload)
  return new RelayConnection({
    ...settings,
    onEnd (ended) {
      settings.onEnd(ended)
      const durationMs = Date.now() - ended.openedAt
      settings.log.info({
        connectionId: identity.id,
        sub: identity.sub,
        clientCode: ended.client.code,
        durationMs,
        fromClient: ended.client.traffic,
        fromBackend: ended.backend.traffic,
        dropped: ended.dropped
      }, 'ws gateway connection closed')
      // The client leg has closed, so it has its code.
      router.disconnect(identity, { code: ended.client.code as number, durationMs })
    }
  }, (connection) => new MessageEngine(socket, connection, router, identity))
}
