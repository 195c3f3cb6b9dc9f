import type { ChainableCommander, Redis } from 'ioredis'
import type { Keys } from './keys'
import type { RegistryScripts } from './scripts'

/** Runs a pipeline or transaction and fails on the first command that failed (ioredis resolves them). */
export async function execAll (batch: ChainableCommander): Promise<unknown[]> {
  // Only a transaction that a WATCH aborted resolves null; these are pipelines.
  const results = await batch.exec() as Array<[Error | null, unknown]>
  return results.map(([err, value]) => {
    if (err !== null) throw err
    return value
  })
}

/** Ids removed per round trip. */
const BATCH = 500

/**
 * Removes connections of a node from the registry: their hashes, their places in the indexes
 * and in the node's counts. Idempotent (the unregister script changes nothing for a hash that
 * is gone), so nodes racing to remove the same connections do no harm.
 */
export async function removeConnections (redis: Redis & RegistryScripts, keys: Keys, node: string, ids: string[]): Promise<void> {
  for (let at = 0; at < ids.length; at += BATCH) {
    const chunk = ids.slice(at, at + BATCH)
    const lookup = redis.pipeline()
    for (const id of chunk) lookup.hget(keys.conn(node, id), 'sub')
    const subs = await execAll(lookup) as Array<string | null>
    const removal = redis.pipeline()
    for (const [i, id] of chunk.entries()) {
      ;(removal as unknown as RegistryScripts).wsgUnregister(keys.conn(node, id), keys.conns(node), keys.counts(node), id)
      removal.srem(keys.conns(node), id).zrem(keys.all, id)
      const sub = subs[i]
      if (sub !== null) removal.zrem(keys.user(sub), id)
    }
    await execAll(removal)
  }
}

/**
 * Removes every registration of a node that is gone (or leaving): its connections, its counts,
 * its inbox and its place among the nodes.
 */
export async function sweepNode (redis: Redis & RegistryScripts, keys: Keys, node: string): Promise<void> {
  await removeConnections(redis, keys, node, await redis.smembers(keys.conns(node)))
  await execAll(redis.pipeline().del(keys.conns(node), keys.counts(node), keys.inbox(node), keys.alive(node)).srem(keys.nodes, node))
}
