import type { Connection } from '../relay/types'
import type { ConnectionId, Member, Outgoing, OutgoingClose } from './types'

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
 * with 1001. A class, so that an idle connection's member is one small object (its methods are
 * shared, not closures made per connection).
 */
class RelayMember implements Member {
  readonly id: ConnectionId
  readonly path: string
  readonly backendId: string | undefined
  readonly sub: string | undefined
  readonly sourceIp: string
  readonly userAgent: string | undefined
  readonly maxPayload: number

  constructor (private readonly connection: Connection, facts: MemberFacts) {
    this.id = facts.id
    this.path = facts.path
    this.backendId = facts.backendId
    this.sub = facts.sub
    this.sourceIp = facts.sourceIp
    this.userAgent = facts.userAgent
    this.maxPayload = facts.maxPayload
  }

  get connectedAt (): number {
    return this.connection.openedAt
  }

  lastActiveAt (): number {
    return this.connection.lastActiveAt
  }

  push (message: Outgoing): void {
    this.connection.push(message)
  }

  close ({ code, reason }: OutgoingClose): void {
    this.connection.end(code, reason)
  }
}

/** The registry's member for a relayed connection (see `RelayMember`). */
export function relayMember (connection: Connection, facts: MemberFacts): Member {
  return new RelayMember(connection, facts)
}
