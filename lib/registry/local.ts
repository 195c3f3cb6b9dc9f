import { InvalidQueryError } from '../errors'
import type { ConnectionId, ConnectionInfo, ConnectionPage, ListQuery, Member } from './types'

/** Which connections a fan-out or a listing is about. */
export interface MemberFilter {
  sub?: string
  path?: string
  backendId?: string
}

export const DEFAULT_LIST_LIMIT = 100
export const MAX_LIST_LIMIT = 1000

/** Whether a connection matches every field the filter sets. */
export function matches (member: Pick<ConnectionInfo, 'sub' | 'path' | 'backendId'>, filter: MemberFilter): boolean {
  return (filter.sub === undefined || member.sub === filter.sub) &&
    (filter.path === undefined || member.path === filter.path) &&
    (filter.backendId === undefined || member.backendId === filter.backendId)
}

/** A connection's facts as the API returns them. */
export function infoOf (member: Member, node: string): ConnectionInfo {
  const info: ConnectionInfo = {
    id: member.id,
    node,
    path: member.path,
    connectedAt: new Date(member.connectedAt).toISOString(),
    lastActiveAt: new Date(member.lastActiveAt()).toISOString(),
    sourceIp: member.sourceIp
  }
  if (member.backendId !== undefined) info.backendId = member.backendId
  if (member.sub !== undefined) info.sub = member.sub
  if (member.userAgent !== undefined) info.userAgent = member.userAgent
  return info
}

/** `list()`'s cursor: the last id of the page before, opaque to callers. */
export function encodeCursor (id: ConnectionId): string {
  return Buffer.from(id).toString('base64url')
}

export function decodeCursor (cursor: string | undefined): ConnectionId | undefined {
  if (cursor === undefined) return undefined
  const id = Buffer.from(cursor, 'base64url').toString()
  if (cursor === '' || encodeCursor(id) !== cursor) throw new InvalidQueryError('cursor')
  return id
}

/** A `list()` query checked, with its default limit. */
export function checkQuery (query: unknown): Required<Pick<ListQuery, 'limit'>> & MemberFilter & { after?: ConnectionId } {
  if (query === undefined) return { limit: DEFAULT_LIST_LIMIT }
  if (typeof query !== 'object' || query === null) throw new InvalidQueryError('query must be an object')
  const { sub, path, backendId, limit = DEFAULT_LIST_LIMIT, cursor, ...rest } = query as Record<string, unknown>
  const unknown = Object.keys(rest)[0]
  if (unknown !== undefined) throw new InvalidQueryError(`unknown field "${unknown}"`)
  for (const [name, value] of Object.entries({ sub, path, backendId, cursor })) {
    if (value !== undefined && (typeof value !== 'string' || value === '')) throw new InvalidQueryError(`${name} must be a non-empty string`)
  }
  if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1 || limit > MAX_LIST_LIMIT) {
    throw new InvalidQueryError(`limit must be an integer from 1 to ${MAX_LIST_LIMIT}`)
  }
  return { sub, path, backendId, limit, after: decodeCursor(cursor as string | undefined) } as ReturnType<typeof checkQuery>
}

/**
 * The connections of this instance, by id and by user: what `send()` and friends reach without
 * asking anyone, and what the cluster registers in Redis.
 */
export class LocalDirectory {
  private readonly members = new Map<ConnectionId, Member>()
  private readonly byUser = new Map<string, Set<Member>>()

  constructor (readonly node: string) {}

  get size (): number {
    return this.members.size
  }

  add (member: Member): void {
    this.members.set(member.id, member)
    if (member.sub === undefined) return
    let set = this.byUser.get(member.sub)
    if (set === undefined) this.byUser.set(member.sub, set = new Set())
    set.add(member)
  }

  remove (member: Member): void {
    this.members.delete(member.id)
    if (member.sub === undefined) return
    const set = this.byUser.get(member.sub) as Set<Member>
    set.delete(member)
    if (set.size === 0) this.byUser.delete(member.sub)
  }

  get (id: ConnectionId): Member | undefined {
    return this.members.get(id)
  }

  all (): IterableIterator<Member> {
    return this.members.values()
  }

  /** The members a filter picks (by user through its index). */
  select (filter: MemberFilter): Member[] {
    const pool = filter.sub === undefined ? this.members.values() : this.byUser.get(filter.sub) ?? []
    return [...pool].filter((member) => matches(member, filter))
  }

  /** One page of `list()`, in id order, after the cursor's id. */
  page (query: ReturnType<typeof checkQuery>): ConnectionPage {
    const { after, limit } = query
    const ids = this.select(query).map((member) => member.id).filter((id) => after === undefined || id > after).sort()
    const items = ids.slice(0, limit).map((id) => infoOf(this.members.get(id) as Member, this.node))
    return ids.length > limit ? { items, cursor: encodeCursor(items[items.length - 1].id) } : { items }
  }
}
