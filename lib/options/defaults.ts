import type { RateLimitOptions, RelayEngine } from './types'

/* Every default, named; the README's options table lists them. */

export const DEFAULT_PATH = '/ws'
export const DEFAULT_ID_HEADER = 'id'
export const DEFAULT_CONNECT_TIMEOUT = 10_000
export const DEFAULT_MAX_PAYLOAD = 1024 * 1024
export const DEFAULT_HEARTBEAT_INTERVAL = 30_000
export const DEFAULT_IDLE_TIMEOUT = 0
export const DEFAULT_HIGH_WATER_MARK = 1024 * 1024
export const DEFAULT_CLOSE_TIMEOUT = 5_000
export const DEFAULT_CLOCK_TOLERANCE = 5
export const DEFAULT_ENGINE: RelayEngine = 'passthrough'
export const DEFAULT_TOKEN_PROTOCOL = 'bearer'
export const DEFAULT_MAX_CONNECTIONS = 10_000
export const DEFAULT_MAX_CONNECTIONS_PER_IP = 0
export const DEFAULT_MAX_CONNECTIONS_PER_SUBJECT = 0
export const DEFAULT_RETRY_AFTER = 5
export const DEFAULT_DRAIN_TIMEOUT = 1_000
export const DEFAULT_SLOW_CONSUMER_TIMEOUT = 30_000
export const DEFAULT_RATE_LIMIT: Readonly<Required<RateLimitOptions>> = Object.freeze({
  messagesPerSecond: 10_000,
  bytesPerSecond: 64 * 1024 * 1024,
  onExceeded: 'close'
})

/** Backend IDs are only ever looked up, never pasted into a URL; this keeps them boring. */
export const BACKEND_ID_PATTERN = /^[A-Za-z0-9_.-]{1,64}$/
export const HEADER_NAME_PATTERN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
