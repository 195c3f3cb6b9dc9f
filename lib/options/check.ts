import { validateHeaderName, validateHeaderValue } from 'node:http'
import { InvalidOptionError } from '../errors'
import { HEADER_NAME_PATTERN, MAX_TIMER_DELAY } from './defaults'

/* The small checks every option validator uses; each names the option at fault. */

export function fail (message: string): never {
  throw new InvalidOptionError(message)
}

export function isPlainObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
}

/** Refuses any key of `object` not in `known`, naming it as `prefix` + key. */
export function checkKeys (object: Record<string, unknown>, known: ReadonlySet<string>, prefix: string): void {
  const unknown = Object.keys(object).find((key) => !known.has(key))
  if (unknown !== undefined) fail(`unknown option "${prefix}${unknown}"`)
}

export function checkFunction (value: unknown, name: string): void {
  if (value !== undefined && typeof value !== 'function') fail(`${name} must be a function`)
}

/** An optional name (query parameter, cookie, protocol marker): a non-empty token. */
export function checkName (value: unknown, name: string): string | undefined {
  if (value !== undefined && (typeof value !== 'string' || !HEADER_NAME_PATTERN.test(value))) {
    fail(`${name} must be a non-empty name of letters, digits and !#$%&'*+.^_\`|~-`)
  }
  return value
}

export function checkInteger (opts: Record<string, unknown>, name: string, fallback: number, min: number, prefix = ''): number {
  const value = opts[name] ?? fallback
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min) {
    fail(`${prefix}${name} must be an integer >= ${min}`)
  }
  return value
}

/**
 * A timing option in ms: at least `min` (or 0 where 0 turns it off) and within Node's timer range,
 * beyond which a timer fires at once.
 */
export function checkTimeout (opts: Record<string, unknown>, name: string, fallback: number, min: number, zeroIsOff = false, prefix = ''): number {
  const value = opts[name] ?? fallback
  const inRange = typeof value === 'number' && Number.isInteger(value) && value >= min && value <= MAX_TIMER_DELAY
  if (!inRange && !(zeroIsOff && value === 0)) {
    fail(`${prefix}${name} must be ${zeroIsOff ? '0 (off) or ' : ''}an integer from ${min} to ${MAX_TIMER_DELAY} (ms)`)
  }
  return value as number
}

export function checkChoice<T> (opts: Record<string, unknown>, name: string, fallback: T, choices: readonly T[], prefix = ''): T {
  const value = (opts[name] ?? fallback) as T
  if (!choices.includes(value)) fail(`${prefix}${name} must be one of ${choices.join(', ')}`)
  return value
}

/**
 * Why a set of handshake headers could not be sent (to append to their option's name, e.g.
 * `["x y"] is not a valid header name`), or undefined when it can: each name must be
 * an HTTP token and each value a string (or, with `lists`, an array of strings) without control
 * characters — what Node's HTTP client would otherwise refuse only when a client connects.
 */
export function headersProblem (headers: unknown, lists = false): string | undefined {
  if (!isPlainObject(headers)) return ' must be an object of header names to strings'
  for (const [name, value] of Object.entries(headers)) {
    const values = lists && Array.isArray(value) ? value : [value]
    if (!values.every((v) => typeof v === 'string')) return `["${name}"] must be a string${lists ? ' or an array of strings' : ''}`
    try {
      validateHeaderName(name)
    } catch {
      return `["${name}"] is not a valid header name`
    }
    try {
      for (const v of values) validateHeaderValue(name, v)
    } catch {
      return `["${name}"] has a character not allowed in a header value`
    }
  }
  return undefined
}
