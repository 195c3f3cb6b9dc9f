import type { Redis, RedisOptions } from 'ioredis'
import { checkFunction, checkInteger, fail, isPlainObject } from './check'
import { DEFAULT_CLUSTER_PREFIX, PREFIX_PATTERN, isRedisClient } from './cluster'
import { BACKEND_ID_PATTERN } from './defaults'
import { wsUrl } from './pool'

/** Options of `announceBackend`. */
export interface AnnounceOptions {
  /** The gateways' Redis: a URL, ioredis options, or an ioredis instance of the app's (used, never closed). */
  redis: string | RedisOptions | Redis
  /** The backend ID this endpoint serves (the gateways' `id` header value). */
  id: string
  /** Where the gateways reach this endpoint: a `ws:` or `wss:` URL. */
  url: string
  /** Milliseconds the announcement lives without a refresh (it is refreshed every third of it). Default 10000. */
  ttl?: number
  /** The gateways' `cluster.prefix`. Default `'wsg'`. */
  prefix?: string
  /** Called when an announcement could not be written (it is tried again at the next refresh). */
  onError?: (err: Error) => void
}

export const DEFAULT_ANNOUNCE_TTL = 10_000

/** Validates `announceBackend`'s options (`FST_WS_GATEWAY_INVALID_OPTION`, naming the option). */
export function resolveAnnounce (input: unknown): Required<AnnounceOptions> {
  if (!isPlainObject(input)) fail('announceBackend needs an options object')
  const known = ['redis', 'id', 'url', 'ttl', 'prefix', 'onError']
  const unknown = Object.keys(input).find((key) => !known.includes(key))
  if (unknown !== undefined) fail(`unknown option "announceBackend.${unknown}"`)
  const { redis, id, url, prefix = DEFAULT_CLUSTER_PREFIX } = input
  if (!(typeof redis === 'string' && /^rediss?:\/\//.test(redis)) && !isPlainObject(redis) && !isRedisClient(redis)) {
    fail('announceBackend.redis must be a redis: URL, ioredis options or an ioredis instance')
  }
  if (typeof id !== 'string' || !BACKEND_ID_PATTERN.test(id)) fail(`announceBackend.id must match ${BACKEND_ID_PATTERN}`)
  if (typeof prefix !== 'string' || !PREFIX_PATTERN.test(prefix)) fail(`announceBackend.prefix must match ${PREFIX_PATTERN}`)
  checkFunction(input.onError, 'announceBackend.onError')
  return {
    redis: redis as AnnounceOptions['redis'],
    id,
    url: wsUrl(url, 'announceBackend.url').href,
    ttl: checkInteger(input, 'ttl', DEFAULT_ANNOUNCE_TTL, 1000, 'announceBackend.'),
    prefix,
    onError: (input.onError ?? (() => {})) as Required<AnnounceOptions>['onError']
  }
}
