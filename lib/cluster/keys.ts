/*
 * The Redis keys of the registry. Everything about one node carries the node id as a hash tag
 * (`{node}`), so a send's check-and-append touches one slot (Redis Cluster) and one script.
 *
 *   {prefix}:nodes                  SET   node ids ever seen (for the sweep)
 *   {prefix}:{node}:alive           STR   the node's liveness, expires after nodeTtl
 *   {prefix}:{node}:conns           SET   the node's connection ids
 *   {prefix}:{node}:conn:{id}       HASH  one connection's facts (ConnectionInfo, maxPayload, full)
 *   {prefix}:{node}:counts          HASH  the node's connections by `*`, `p:path`, `b:backend`, `pb:path|backend`
 *   {prefix}:{node}:inbox           STREAM what other nodes ask of this node's connections
 *   {prefix}:all                    ZSET  every connection id (lexicographic: list()'s order)
 *   {prefix}:user:{sub}             ZSET  one user's connection ids
 *   {prefix}:{backends}:ids         SET   backend ids announced by `announceBackend`
 *   {prefix}:{backends}:{id}        ZSET  one backend's announced URLs, scored by expiry (Redis's clock, ms)
 */
export class Keys {
  constructor (readonly prefix: string) {}

  get nodes (): string { return `${this.prefix}:nodes` }
  get all (): string { return `${this.prefix}:all` }
  user (sub: string): string { return `${this.prefix}:user:${sub}` }
  alive (node: string): string { return `${this.prefix}:{${node}}:alive` }
  conns (node: string): string { return `${this.prefix}:{${node}}:conns` }
  conn (node: string, id: string): string { return `${this.prefix}:{${node}}:conn:${id}` }
  counts (node: string): string { return `${this.prefix}:{${node}}:counts` }
  inbox (node: string): string { return `${this.prefix}:{${node}}:inbox` }
  get announcedIds (): string { return `${this.prefix}:{backends}:ids` }
  announced (backendId: string): string { return `${this.prefix}:{backends}:${backendId}` }
}

/** The fields of a node's `counts` hash that a connection adds to (see `countField`). */
export function countFields (path: string, backendId: string | undefined): string[] {
  const fields = ['*', `p:${path}`]
  if (backendId !== undefined) fields.push(`b:${backendId}`, `pb:${path}|${backendId}`)
  return fields
}

/** The `counts` field that counts the connections a broadcast filter picks. */
export function countField (path: string | undefined, backendId: string | undefined): string {
  if (path !== undefined && backendId !== undefined) return `pb:${path}|${backendId}`
  if (path !== undefined) return `p:${path}`
  if (backendId !== undefined) return `b:${backendId}`
  return '*'
}
