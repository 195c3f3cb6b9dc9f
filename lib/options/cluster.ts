import type { Redis } from 'ioredis'
import { checkTimeout, fail, isPlainObject } from './check'
import { NODE_ID_PATTERN } from '../registry/ids'
import type { ResolvedCluster } from './types'

export const DEFAULT_CLUSTER_PREFIX = 'wsg'
export const DEFAULT_NODE_TTL = 10_000
export const DEFAULT_COMMAND_TIMEOUT = 1_000
export const PREFIX_PATTERN = /^[A-Za-z0-9_:-]{1,64}$/
const KNOWN = new Set(['redis', 'prefix', 'nodeId', 'nodeTtl', 'commandTimeout'])

/** Whether a value is an ioredis client (duck-typed: the app may have its own copy of ioredis). */
export function isRedisClient (value: unknown): value is Redis {
  return typeof value === 'object' && value !== null && typeof (value as Redis).duplicate === 'function' &&
    typeof (value as Redis).xadd === 'function'
}

/** Validates `cluster`; undefined when the gateway runs on its own. */
export function resolveCluster (input: unknown): ResolvedCluster | undefined {
  if (input === undefined) return undefined
  if (!isPlainObject(input)) fail('cluster must be an object')
  const unknown = Object.keys(input).find((key) => !KNOWN.has(key))
  if (unknown !== undefined) fail(`unknown option "cluster.${unknown}"`)
  const { redis, prefix = DEFAULT_CLUSTER_PREFIX, nodeId } = input
  if (typeof redis !== 'string' && !isPlainObject(redis) && !isRedisClient(redis)) {
    fail('cluster.redis must be a Redis URL, ioredis options or an ioredis instance')
  }
  if (typeof redis === 'string' && !/^rediss?:\/\//.test(redis)) fail('cluster.redis must be a redis: or rediss: URL')
  if (typeof prefix !== 'string' || !PREFIX_PATTERN.test(prefix)) fail(`cluster.prefix must match ${PREFIX_PATTERN}`)
  if (nodeId !== undefined && (typeof nodeId !== 'string' || !NODE_ID_PATTERN.test(nodeId))) {
    fail(`cluster.nodeId must match ${NODE_ID_PATTERN}`)
  }
  return Object.freeze({
    redis: redis as ResolvedCluster['redis'],
    prefix,
    nodeId: nodeId as string | undefined,
    nodeTtl: checkTimeout(input, 'nodeTtl', DEFAULT_NODE_TTL, 1000, false, 'cluster.'),
    commandTimeout: checkTimeout(input, 'commandTimeout', DEFAULT_COMMAND_TIMEOUT, 10, false, 'cluster.')
  })
}
