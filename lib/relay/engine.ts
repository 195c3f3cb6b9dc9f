import type WebSocket from 'ws'
import type { RelayEngine } from '../options/types'
import { RelayConnection } from './connection'
import { FrameRelay, type RawLeg } from './passthrough/relay'
import { canAdopt, capMaxPayload } from './passthrough/ws-internals'
import type { Connection, RelaySettings } from './types'
import { Relay } from './ws/relay'

/**
 * Starts relaying between an upgraded client and its open backend with the engine asked for.
 * The passthrough engine relays frames as they are, so only legs without extensions (no
 * permessage-deflate) can use it; it also needs ws's internals as it knows them (`canAdopt`):
 * when they differ, the connection is relayed by the ws engine and a warning says so. Anything
 * else goes through the ws engine. The connection's `engineName` tells which one it got. Either
 * way the client leg takes messages up to the gateway's `maxPayload` (the backend leg has its own
 * from its ws options).
 */
export function startRelay (engine: RelayEngine, clientWs: WebSocket, backendWs: WebSocket, settings: RelaySettings): Connection {
  capMaxPayload(clientWs, settings.maxPayload)
  let passthrough = engine === 'passthrough' && clientWs.extensions === '' && backendWs.extensions === ''
  if (passthrough && !canAdopt(clientWs, backendWs)) {
    passthrough = false
    settings.log.warn('ws gateway cannot take these sockets over from ws (not TCP sockets, or ws internals other than those verified): relaying with the ws engine')
  }
  return new RelayConnection(settings, (connection) => passthrough
    ? new FrameRelay(clientWs, backendWs, connection)
    : new Relay(clientWs, backendWs, connection))
}

/**
 * Starts relaying with the passthrough engine between two sockets the gateway upgraded itself
 * (no ws WebSocket on either: see `takesRawSockets` in lib/handshake/upgrade.ts), neither of
 * which negotiated an extension. Each `head` holds the first bytes read past its upgrade.
 */
export function startRawRelay (client: RawLeg, backend: RawLeg, settings: RelaySettings): Connection {
  return new RelayConnection(settings, (connection) => new FrameRelay(client, backend, connection))
}
