import { fail, isPlainObject } from './check'
import { DEFAULT_DROP_HEADERS, HEADER_NAME_PATTERN } from './defaults'
import type { ResolvedOptions, TokenClaims } from './types'

/** A `dropHeaders` entry: a header name, or a prefix ending in `*` (`*` alone drops them all). */
function isHeaderPattern (entry: unknown): entry is string {
  if (typeof entry !== 'string') return false
  const name = entry.endsWith('*') ? entry.slice(0, -1) : entry
  return (name === '' && entry === '*') || HEADER_NAME_PATTERN.test(name)
}

/**
 * The `dropHeaders` list as a test of a lower-case header name. The default list is always the
 * start: an array adds to it, a function gets it and returns the list to use instead. The
 * identity header names are added, so a client can never supply them.
 */
export function resolveDropHeaders (input: unknown, identityNames: readonly string[]): ResolvedOptions['isDroppedHeader'] {
  let list: unknown
  if (input === undefined) list = DEFAULT_DROP_HEADERS
  else if (Array.isArray(input)) list = [...DEFAULT_DROP_HEADERS, ...input]
  else if (typeof input === 'function') list = input(DEFAULT_DROP_HEADERS)
  else fail('dropHeaders must be an array of header names or a function of the default list')
  if (!Array.isArray(list) || !list.every(isHeaderPattern)) {
    fail('dropHeaders must give header names or prefixes ending in "*"')
  }
  const names = new Set<string>(identityNames)
  const prefixes: string[] = []
  for (const entry of list as string[]) {
    const lower = entry.toLowerCase()
    if (lower.endsWith('*')) prefixes.push(lower.slice(0, -1))
    else names.add(lower)
  }
  return (name) => names.has(name) || prefixes.some((prefix) => name.startsWith(prefix))
}

/** A claim as a header value: arrays joined by `, `, objects as JSON; beyond printable ASCII, percent-encoded. */
export function claimHeaderValue (claim: unknown): string {
  const one = (value: unknown): string => typeof value === 'object' && value !== null ? JSON.stringify(value) : String(value)
  const text = Array.isArray(claim) ? claim.map(one).join(', ') : one(claim)
  return /^[\x20-\x7e]*$/.test(text) ? text : encodeURIComponent(text)
}

/** The validated `identityHeaders`: the map form compiled to a function, and the header names it writes. */
export function resolveIdentityHeaders (input: unknown): { headers?: ResolvedOptions['identityHeaders'], names: string[] } {
  if (input === undefined) return { names: [] }
  if (typeof input === 'function') return { headers: input as ResolvedOptions['identityHeaders'], names: [] }
  if (!isPlainObject(input)) fail('identityHeaders must be an object of claim → header name, or a function')
  const entries = Object.entries(input).map(([claim, header]) => {
    if (typeof header !== 'string' || !HEADER_NAME_PATTERN.test(header)) fail(`identityHeaders.${claim} must be a header name`)
    return [claim, header.toLowerCase()] as const
  })
  const headers = (claims: TokenClaims): Record<string, string> => {
    const out: Record<string, string> = {}
    for (const [claim, header] of entries) {
      if (claims[claim] !== undefined && claims[claim] !== null) out[header] = claimHeaderValue(claims[claim])
    }
    return out
  }
  return { headers, names: entries.map(([, header]) => header) }
}
