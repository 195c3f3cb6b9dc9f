import type { Redis } from 'ioredis'
import { nodeOf } from '../registry/ids'
import { encodeCursor, matches, type checkQuery } from '../registry/local'
import type { ConnectionInfo, ConnectionPage } from '../registry/types'
import { infoFromHash } from './codec'
import type { Keys } from './keys'
import { execAll } from './sweep'

export type CheckedQuery = ReturnType<typeof checkQuery>

/**
 * One page of `list()` across the cluster, in id order: ids are read from the user's index (or
 * the global one) after the cursor, and kept when their hash exists, their node is alive and
 * they match the filter — so a dead node's connections are gone from the list as soon as its
 * liveness key expires, before any sweep.
 */
export async function listPage (redis: Redis, keys: Keys, query: CheckedQuery): Promise<ConnectionPage> {
  const source = query.sub === undefined ? keys.all : keys.user(query.sub)
  const batchSize = Math.max(query.limit, 100)
  const alive = new Map<string, boolean>()
  const items: ConnectionInfo[] = []
  let after = query.after
  for (;;) {
    const ids = await redis.zrangebylex(source, after === undefined ? '-' : `(${after}`, '+', 'LIMIT', 0, batchSize)
    const nodes = [...new Set(ids.map((id) => nodeOf(id) as string))].filter((node) => !alive.has(node))
    const lookup = redis.pipeline()
    for (const node of nodes) lookup.exists(keys.alive(node))
    for (const id of ids) lookup.hgetall(keys.conn(nodeOf(id) as string, id))
    const results = await execAll(lookup)
    for (const [i, node] of nodes.entries()) alive.set(node, results[i] === 1)
    for (const [i, id] of ids.entries()) {
      after = id
      const info = infoFromHash(results[nodes.length + i] as Record<string, string>)
      if (info === undefined || alive.get(info.node) !== true || !matches(info, query)) continue
      items.push(info)
      if (items.length === query.limit) return { items, cursor: encodeCursor(id) }
    }
    if (ids.length < batchSize) return { items }
  }
}
