import { InvalidOptionError } from '../errors'
import { HEADER_NAME_PATTERN } from './defaults'

/* The small checks every option validator uses; each names the option at fault. */

export function fail (message: string): never {
  throw new InvalidOptionError(message)
}

export function isPlainObject (value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value)
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

export function checkChoice<T> (opts: Record<string, unknown>, name: string, fallback: T, choices: readonly T[]): T {
  const value = (opts[name] ?? fallback) as T
  if (!choices.includes(value)) fail(`${name} must be one of ${choices.join(', ')}`)
  return value
}
