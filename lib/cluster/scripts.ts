import type { Redis } from 'ioredis'

/*
 * The registry's Lua scripts. Each touches the keys of one node only (one hash tag), and each
 * that appends to an inbox first checks the caller's deadline against Redis's own clock: a call
 * that already timed out for its caller (Redis paused, a slow link) appends nothing, so a
 * rejected send is never delivered later.
 */

/** Milliseconds on Redis's clock. */
const NOW = "local t = redis.call('TIME') local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)"

/**
 * Appends a message or a close for one connection to its node's inbox.
 * KEYS: alive, conn, inbox. ARGV: deadline, size (-1: a close), then the entry's field/value pairs.
 * Returns 1 appended; 0 gone (node dead or connection unknown); -1 too late; {-2, max} too large.
 */
const DELIVER = `${NOW}
if now > tonumber(ARGV[1]) then return -1 end
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local max = redis.call('HGET', KEYS[2], 'maxPayload')
if not max then return 0 end
if tonumber(ARGV[2]) > tonumber(max) then return {-2, tonumber(max)} end
redis.call('XADD', KEYS[3], '*', unpack(ARGV, 3))
return 1`

/**
 * Appends a fan-out to a node's inbox when it is alive and has targets.
 * KEYS: alive, counts, inbox. ARGV: deadline, count ('' to read the counts hash), counts field,
 * then the entry's field/value pairs. Returns how many connections it was addressed to, or -1.
 */
const FAN_OUT = `${NOW}
if now > tonumber(ARGV[1]) then return -1 end
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local count = tonumber(ARGV[2]) or tonumber(redis.call('HGET', KEYS[2], ARGV[3]) or '0')
if count == 0 then return 0 end
redis.call('XADD', KEYS[3], '*', unpack(ARGV, 4))
return count`

/**
 * Registers a connection on its node, once (registering it again only refreshes its hash, so a
 * sync racing the connection's own registration counts it once). The counts fields it adds to
 * are kept in the hash (`counts`, newline-separated) for the unregister to take back.
 * KEYS: conn, conns, counts. ARGV: id, the counts fields (newline-separated), then the hash's
 * field/value pairs.
 */
const REGISTER = `redis.call('HSET', KEYS[1], 'counts', ARGV[2], unpack(ARGV, 3))
if redis.call('SADD', KEYS[2], ARGV[1]) == 0 then return 0 end
for field in string.gmatch(ARGV[2], '[^\\n]+') do redis.call('HINCRBY', KEYS[3], field, 1) end
return 1`

/**
 * Removes a connection from its node, once (a second call, or one after a sweep, changes
 * nothing). KEYS: conn, conns, counts. ARGV: id.
 */
const UNREGISTER = `local fields = redis.call('HGET', KEYS[1], 'counts')
if not fields then return 0 end
redis.call('DEL', KEYS[1])
redis.call('SREM', KEYS[2], ARGV[1])
for field in string.gmatch(fields, '[^\\n]+') do
  if redis.call('HINCRBY', KEYS[3], field, -1) <= 0 then redis.call('HDEL', KEYS[3], field) end
end
return 1`

/**
 * Announces a backend endpoint until `ttl` ms from now (Redis's clock, so announcers' clocks do
 * not matter). KEYS: announced ids, the backend's set. ARGV: id, url, ttl.
 */
const ANNOUNCE = `${NOW}
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[3]), ARGV[2])
redis.call('SADD', KEYS[1], ARGV[1])
return 1`

/**
 * A backend's announced URLs that have not expired; expired ones are removed, and the id too
 * once none is left. KEYS: announced ids, the backend's set. ARGV: id.
 */
const ANNOUNCED = `${NOW}
redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now)
local urls = redis.call('ZRANGE', KEYS[2], 0, -1)
if #urls == 0 then redis.call('SREM', KEYS[1], ARGV[1]) end
return urls`

export interface RegistryScripts {
  wsgDeliver: (alive: string, conn: string, inbox: string, ...args: Array<string | number | Buffer>) => Promise<number | [number, number]>
  wsgFanOut: (alive: string, counts: string, inbox: string, ...args: Array<string | number | Buffer>) => Promise<number>
  wsgRegister: (conn: string, conns: string, counts: string, ...args: Array<string | number>) => Promise<number>
  wsgUnregister: (conn: string, conns: string, counts: string, ...args: Array<string | number>) => Promise<number>
  wsgAnnounce: (ids: string, backend: string, id: string, url: string, ttl: number) => Promise<number>
  wsgAnnounced: (ids: string, backend: string, id: string) => Promise<string[]>
}

/** Defines the scripts on a client (idempotent; ioredis sends EVALSHA and falls back to EVAL). */
export function withScripts (redis: Redis): Redis & RegistryScripts {
  if (typeof (redis as Partial<RegistryScripts>).wsgDeliver !== 'function') {
    redis.defineCommand('wsgDeliver', { numberOfKeys: 3, lua: DELIVER })
    redis.defineCommand('wsgFanOut', { numberOfKeys: 3, lua: FAN_OUT })
    redis.defineCommand('wsgRegister', { numberOfKeys: 3, lua: REGISTER })
    redis.defineCommand('wsgUnregister', { numberOfKeys: 3, lua: UNREGISTER })
    redis.defineCommand('wsgAnnounce', { numberOfKeys: 2, lua: ANNOUNCE })
    redis.defineCommand('wsgAnnounced', { numberOfKeys: 2, lua: ANNOUNCED })
  }
  return redis as Redis & RegistryScripts
}
