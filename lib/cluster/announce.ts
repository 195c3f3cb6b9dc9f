import { once } from 'node:events'
import type { Redis } from 'ioredis'
import { resolveAnnounce, type AnnounceOptions } from '../options/announce'
import { Keys } from './keys'
import { redisClient } from './redis'
import { withScripts, type RegistryScripts } from './scripts'

/**
 * Announces a backend endpoint to the gateways that share its Redis (`cluster.redis`): they add
 * `url` to the pool of backend `id` within a poll (a third of their `cluster.nodeTtl`) and drop
 * it `ttl` ms after the last refresh — when this process dies, or at once when `stop` is called.
 * Resolves with `stop` once the first announcement was written, or failed: the announcement is
 * refreshed every `ttl / 3` ms, and one that fails (Redis down) is reported to `onError` and tried
 * again at the next refresh, so a backend may start before Redis. Rejects
 * `FST_WS_GATEWAY_INVALID_OPTION` for a bad option.
 *
 * @example
 * ```ts
 * import { announceBackend } from 'fastify-ws-gateway'
 *
 * const stop = await announceBackend({ redis: 'redis://redis:6379', id: 'Backend_ABC', url: `ws://${podIp}:9001`, ttl: 10_000 })
 * process.on('SIGTERM', async () => { await stop(); server.close() })
 * ```
 */
export async function announceBackend (options: AnnounceOptions): Promise<() => Promise<void>> {
  const { redis, id, url, ttl, prefix, onError } = resolveAnnounce(options)
  const { client, owned } = redisClient(redis)
  client.on('error', onError)
  const scripts = withScripts(client)
  const keys = new Keys(prefix)
  const refresh = async (): Promise<void> => {
    await scripts.wsgAnnounce(keys.announcedIds, keys.announced(id), id, url, ttl).catch(onError)
  }
  const interval = Math.floor(ttl / 3)
  const timer = setInterval(() => { refresh() }, interval).unref()
  // A new client of ours fails commands until it is connected (no offline queue): wait for that,
  // up to one refresh interval (or the first error: Redis is down, and the refreshes go on).
  if (client.status !== 'ready') {
    let wait: NodeJS.Timeout | undefined
    await Promise.race([once(client, 'ready'), new Promise((resolve) => { wait = setTimeout(resolve, interval) })]).catch(() => {})
    clearTimeout(wait)
  }
  await refresh()
  let stopped: Promise<void> | undefined
  return async () => {
    stopped ??= (async () => {
      clearInterval(timer)
      // Best effort: a withdrawal that fails expires after `ttl` all the same.
      await client.zrem(keys.announced(id), url).catch(onError)
      client.removeListener('error', onError)
      if (owned) client.disconnect()
    })()
    await stopped
  }
}

/** Every announced backend with its live URLs (expired ones are removed on the way). */
export async function readAnnounced (redis: Redis & RegistryScripts, keys: Keys): Promise<Map<string, string[]>> {
  const ids = await redis.smembers(keys.announcedIds)
  const urls = await Promise.all(ids.map(async (id) => await redis.wsgAnnounced(keys.announcedIds, keys.announced(id), id)))
  return new Map(ids.map((id, i) => [id, urls[i]] as const).filter(([, list]) => list.length > 0))
}

/**
 * Keeps the gateway's announced backends current: reads them every `interval` ms and hands them
 * to `onChange`. A read that fails (Redis down) keeps what was known: an outage must not empty
 * the pools.
 */
export class AnnouncementWatcher {
  private timer: NodeJS.Timeout | undefined

  constructor (
    private readonly read: () => Promise<Map<string, string[]>>,
    private readonly interval: number,
    private readonly onChange: (announced: Map<string, string[]>) => void
  ) {}

  async start (): Promise<void> {
    await this.poll()
    this.timer = setInterval(() => { this.poll() }, this.interval).unref()
  }

  private async poll (): Promise<void> {
    try {
      this.onChange(await this.read())
    } catch {
      // The cluster link logs the outage; the pools stay as they are.
    }
  }

  stop (): void {
    clearInterval(this.timer)
  }
}
