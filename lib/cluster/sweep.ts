import type { ChainableCommander, Redis } from 'ioredis'
import type { Keys } from './keys'

/** Runs a pipeline or transaction and fails on the first command that failed (ioredis resolves them). */
export async function execAll (batch: ChainableCommander): Promise<unknown[]> {
  const results = await batch.exec()
  return (results ?? []).map(([err, value]) => {
    if (err !== null) throw err
    return value
  })
}

/** Ids removed per round trip by a sweep. */
const SWEEP_BATCH = 500

/**
 * Removes every registration of a node: its connections from the indexes, their hashes, its
 * counts — and with `dropInbox`, its inbox and its place among the nodes (a node that is gone,
 * or leaving). Idempotent, so several nodes may sweep the same dead node at once.
 */
export async function sweepNode (redis: Redis, keys: Keys, node: string, { dropInbox }: { dropInbox: boolean }): Promise<void> {
  const ids = await redis.smembers(keys.conns(node))
  for (let at = 0; at < ids.length; at += SWEEP_BATCH) {
    const chunk = ids.slice(at, at + SWEEP_BATCH)
    const lookup = redis.pipeline()
    for (const id of chunk) lookup.hget(keys.conn(node, id), 'sub')
    const subs = await execAll(lookup) as Array<string | null>
    const removal = redis.pipeline()
    for (const [i, id] of chunk.entries()) {
      removal.zrem(keys.all, id).del(keys.conn(node, id))
      const sub = subs[i]
      if (sub !== null) removal.zrem(keys.user(sub), id)
    }
    await execAll(removal)
  }
  const last = redis.pipeline().del(keys.conns(node), keys.counts(node))
  if (dropInbox) last.del(keys.inbox(node)).del(keys.alive(node)).srem(keys.nodes, node)
  await execAll(last)
}
