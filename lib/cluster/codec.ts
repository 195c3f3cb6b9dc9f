import type { MemberFilter } from '../registry/local'
import type { ConnectionInfo, Member, Outgoing, OutgoingClose } from '../registry/types'

/*
 * What the registry writes to Redis: a connection's hash, and the inbox entries. The README's
 * "Cluster wire format" section documents both.
 */

/** A connection's hash fields, as flat field/value pairs for HSET. */
export function memberFields (member: Member, node: string): string[] {
  const fields = [
    'id', member.id, 'node', node, 'path', member.path, 'sourceIp', member.sourceIp,
    'connectedAt', new Date(member.connectedAt).toISOString(),
    'lastActiveAt', new Date(member.lastActiveAt()).toISOString(),
    'maxPayload', String(member.maxPayload)
  ]
  if (member.backendId !== undefined) fields.push('backendId', member.backendId)
  if (member.sub !== undefined) fields.push('sub', member.sub)
  if (member.userAgent !== undefined) fields.push('userAgent', member.userAgent)
  return fields
}

/** A connection's hash, back as the API returns it (undefined when the hash is gone). */
export function infoFromHash (hash: Record<string, string>): ConnectionInfo | undefined {
  if (hash.id === undefined) return undefined
  const info: ConnectionInfo = {
    id: hash.id,
    node: hash.node,
    path: hash.path,
    connectedAt: hash.connectedAt,
    lastActiveAt: hash.lastActiveAt,
    sourceIp: hash.sourceIp
  }
  if (hash.backendId !== undefined) info.backendId = hash.backendId
  if (hash.sub !== undefined) info.sub = hash.sub
  if (hash.userAgent !== undefined) info.userAgent = hash.userAgent
  return info
}

/** Whom an inbox entry is for: one connection, or the node's connections a filter picks. */
export type Target = { id: string } | MemberFilter

/** An inbox entry's field/value pairs: the target, then a message (`data`, `bin`) or a close (`code`, `reason`). */
export function entryFields (target: Target, action: Outgoing | OutgoingClose): Array<string | Buffer> {
  const fields: Array<string | Buffer> = []
  for (const [name, value] of Object.entries(target)) if (value !== undefined) fields.push(name, value)
  if ('code' in action) fields.push('code', String(action.code), 'reason', action.reason)
  else fields.push('data', action.data, 'bin', action.binary ? '1' : '0')
  return fields
}

/** An inbox entry read back (fields as Buffers, from `xreadBuffer`). */
export function parseEntry (raw: Buffer[]): { target: Target, action: Outgoing | OutgoingClose } {
  const fields = new Map<string, Buffer>()
  for (let i = 0; i + 1 < raw.length; i += 2) fields.set(raw[i].toString(), raw[i + 1])
  const text = (name: string): string | undefined => fields.get(name)?.toString()
  const id = text('id')
  const target: Target = id !== undefined ? { id } : { sub: text('sub'), path: text('path'), backendId: text('backendId') }
  const code = text('code')
  const action = code !== undefined
    ? { code: Number(code), reason: text('reason') as string }
    : { data: fields.get('data') as Buffer, binary: text('bin') === '1' }
  return { target, action }
}
