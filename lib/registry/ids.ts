import { randomText } from '../random'

/*
 * Connection ids are opaque to users but not to the gateway: `<nodeId>.<random>` names the
 * instance that owns the connection, so a send needs no lookup to find where to go.
 */

/** Node ids: letters, digits, `_` and `-` (never `.`, which ends the node part of an id). */
export const NODE_ID_PATTERN = /^[A-Za-z0-9_-]{1,64}$/

/** A node id for an instance that was not given one: random, so two instances never share it. */
export function randomNodeId (): string {
  return randomText(6, 'base64url')
}

/** A new connection id owned by `nodeId`: 96 random bits, unique across instances. */
export function newConnectionId (nodeId: string): string {
  return `${nodeId}.${randomText(12, 'base64url')}`
}

/** The node that owns a connection id, or undefined for a string that is no connection id. */
export function nodeOf (id: string): string | undefined {
  const dot = id.indexOf('.')
  if (dot <= 0 || id.length - dot !== 17) return undefined
  const node = id.slice(0, dot)
  return NODE_ID_PATTERN.test(node) ? node : undefined
}
