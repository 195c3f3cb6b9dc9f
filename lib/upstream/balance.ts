import { createHash } from 'node:crypto'
import type { BalanceMode } from '../options/types'

/** What a balancer reads of an endpoint. */
export interface Balanced {
  /** Connections open or being opened through it. */
  readonly active: number
  /** Its share (SRV weight; 1 for listed URLs). */
  readonly weight: number
  /** A 32-bit hash of its key, for rendezvous hashing. */
  readonly hash: number
  /** Smooth weighted round-robin state, owned by the balancer. */
  current: number
}

/**
 * Orders a set of endpoints (all of one priority, all able to take a connection) for a new
 * connection: the first is the choice, the rest the failover order. `key` is the token's `sub`.
 */
export type Balancer = <T extends Balanced>(endpoints: readonly T[], key: string | undefined) => T[]

/** A 32-bit hash of a string, spread well enough for rendezvous hashing. */
export function hash32 (value: string): number {
  return createHash('sha1').update(value).digest().readUInt32BE(0)
}

/** MurmurHash3's finalizer: mixes the bits of a 32-bit integer. */
function mix32 (h: number): number {
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b)
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35)
  return (h ^ (h >>> 16)) >>> 0
}

/** The rest of the list after `first`, wrapping around, so failover walks on from the choice. */
function startingAt<T> (endpoints: readonly T[], first: number): T[] {
  return [...endpoints.slice(first), ...endpoints.slice(0, first)]
}

/**
 * Smooth weighted round-robin (nginx's): each endpoint gains its weight, the richest is chosen and
 * pays the total. With equal weights it is plain round-robin; with 5:1:1 it interleaves
 * (a a b a c a a) rather than sending bursts.
 */
function roundRobin<T extends Balanced> (endpoints: readonly T[]): T[] {
  let total = 0
  let best = 0
  endpoints.forEach((endpoint, i) => {
    endpoint.current += endpoint.weight
    total += endpoint.weight
    if (endpoint.current > endpoints[best].current) best = i
  })
  endpoints[best].current -= total
  return startingAt(endpoints, best)
}

/**
 * Fewest connections per unit of weight first. Ties are broken by a turning start, so a burst of
 * connections to idle endpoints still spreads over them.
 */
function leastConnections (): Balancer {
  let turn = 0
  return (endpoints) => {
    const rotated = startingAt(endpoints, turn++ % endpoints.length)
    return rotated.sort((a, b) => a.active / a.weight - b.active / b.weight)
  }
}

/**
 * Weighted rendezvous hashing (highest random weight) on the token's `sub`: every endpoint gets a
 * score from the pair (sub, endpoint) and the highest wins. A user stays on the same endpoint while
 * it can take connections; when it cannot, the next score takes over; adding an endpoint moves to it
 * only the users it now wins (its share), and removing one moves only its own users. Without a
 * `sub`, round-robin.
 */
function hashSub<T extends Balanced> (endpoints: readonly T[], key: string | undefined): T[] {
  if (key === undefined) return roundRobin(endpoints)
  const keyHash = hash32(key)
  const scored = endpoints.map((endpoint) => {
    const unit = (mix32(keyHash ^ endpoint.hash) + 1) / 0x100000001 // in (0, 1)
    return { endpoint, score: -endpoint.weight / Math.log(unit) }
  })
  return scored.sort((a, b) => b.score - a.score).map(({ endpoint }) => endpoint)
}

/** A balancer for a pool; each pool has its own (the modes with state keep it per pool). */
export function createBalancer (mode: BalanceMode): Balancer {
  if (mode === 'least-connections') return leastConnections()
  return mode === 'hash-sub' ? hashSub : roundRobin
}
