import type { FastifyBaseLogger } from 'fastify'
import { Redis, type RedisOptions } from 'ioredis'
import { ClusterUnavailableError } from '../errors'
import { isRedisClient } from '../options/cluster'
import type { ResolvedCluster } from '../options/types'
import { withScripts, type RegistryScripts } from './scripts'

/** How our own connections behave: fail at once while disconnected, retry the link forever. */
const FAIL_FAST: RedisOptions = {
  enableOfflineQueue: false,
  maxRetriesPerRequest: 0,
  retryStrategy: (attempt) => Math.min(attempt * 100, 1000)
}

/**
 * A Redis client for the `redis` setting: the app's own instance as it is (`owned` false: used,
 * never closed), or one of ours from a URL or ioredis options, failing fast while disconnected.
 */
export function redisClient (redis: ResolvedCluster['redis']): { client: Redis, owned: boolean } {
  if (isRedisClient(redis)) return { client: redis, owned: false }
  return { client: typeof redis === 'string' ? new Redis(redis, FAIL_FAST) : new Redis({ ...redis, ...FAIL_FAST }), owned: true }
}

/**
 * The gateway's Redis links: `command` for everything but the inbox (the app's instance when it
 * passed one, used and never closed), and `reader`, always ours, for the inbox's blocking reads.
 */
export class RedisLinks {
  readonly command: Redis & RegistryScripts
  readonly reader: Redis
  private readonly ownsCommand: boolean
  private readonly onError: (err: Error) => void

  constructor (private readonly cluster: ResolvedCluster, log: FastifyBaseLogger) {
    // `commandTimeout` is enforced by `run` for every client alike, ours or the app's.
    const { client: command, owned } = redisClient(cluster.redis)
    this.ownsCommand = owned
    this.command = withScripts(command)
    // The inbox read blocks for up to a second: no command timeout, and it waits out outages itself.
    this.reader = command.duplicate({ ...FAIL_FAST, commandTimeout: undefined, lazyConnect: false })
    // An unhandled 'error' event would crash the app; the state changes are logged by the cluster.
    this.onError = (err) => log.debug({ err }, 'ws gateway redis error')
    this.command.on('error', this.onError)
    this.reader.on('error', this.onError)
  }

  /**
   * Runs Redis commands within `commandTimeout`: past it, or on any Redis failure, the call
   * rejects `CLUSTER_UNAVAILABLE` (the app's own client may queue commands while disconnected;
   * ours fail at once).
   */
  async run<T> (work: (redis: Redis & RegistryScripts) => Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_resolve, reject) => {
      // The rejection waits for the next turn of the event loop: after a stall (a long synchronous
      // stretch), a reply already read from the socket settles the call first, as it should.
      timer = setTimeout(() => setImmediate(reject, new Error('no answer within commandTimeout')), this.cluster.commandTimeout)
    })
    // (Not try/finally around a return: V8's coverage then leaves part of the function uncounted.)
    const outcome = await Promise.race([work(this.command), timeout]).then((value) => ({ value }), (err: unknown) => ({ err }))
    clearTimeout(timer)
    if ('err' in outcome) throw Object.assign(new ClusterUnavailableError(), { cause: outcome.err })
    return outcome.value
  }

  /** Closes what is ours; the app's client stays open (only our listener leaves it). */
  async close (): Promise<void> {
    this.reader.disconnect()
    if (this.ownsCommand) this.command.disconnect()
    else this.command.removeListener('error', this.onError)
  }
}
