import type { Connection } from '../relay/types'
import type { ConnectionId, Member } from './types'

/** What the handshake learnt of a client, for the registry. */
export interface MemberFacts {
  readonly id: ConnectionId
  readonly path: string
  readonly backendId?: string
  readonly sub?: string
  readonly sourceIp: string
  readonly userAgent?: string
  readonly maxPayload: number
}

/**
 * A relayed connection as the registry reaches it: a pushed message goes to the client between
 * the backend's messages; a close closes the client with the code asked for and the backend
 * with 1001.
 */
export function relayMember (connection: Connection, facts: MemberFacts): Member {
  return {
    ...facts,
    connectedAt: connection.openedAt,
    lastActiveAt: () => connection.lastActiveAt,
    push: (message) => connection.push(message),
    close: ({ code, reason }) => connection.end(code, reason)
  }
}
