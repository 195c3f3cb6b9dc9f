import type WebSocket from 'ws'
import type { RelayEngine } from '../options/types'
import { RelayConnection } from './connection'
import { FrameRelay } from './passthrough/relay'
import { canAdopt, capMaxPayload } from './passthrough/ws-internals'
import type { Connection, RelaySettings } from './types'
import { Relay } from './ws/relay'

/**
 * Starts relaying between an upgraded client and its open backend with the engine asked for.
 * The passthrough engine relays frames as they are, so only legs without extensions (no
 * permessage-deflate) can use it; it also needs ws's internals as it knows them (`canAdopt`).
 * Anything else goes through the ws engine. Either way the client leg takes messages up to the
 * gateway's `maxPayload` (the backend leg has its own from its ws options).
 */
export function startRelay (engine: RelayEngine, clientWs: WebSocket, backendWs: WebSocket, settings: RelaySettings): Connection {
  capMaxPayload(clientWs, settings.maxPayload)
  const passthrough = engine === 'passthrough' && clientWs.extensions === '' && backendWs.extensions === '' &&
    canAdopt(clientWs, backendWs)
  return new RelayConnection(settings, (connection) => passthrough
    ? new FrameRelay(clientWs, backendWs, connection)
    : new Relay(clientWs, backendWs, connection))
}
