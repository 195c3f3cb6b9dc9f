/**
 * HS256 JWT signing with node:crypto, so the load generator authenticates exactly like a client
 * of the gateway would (Authorization: Bearer <token>) without another dependency.
 */
import { createHmac, randomBytes } from 'node:crypto'

function base64url (value: string | Buffer): string {
  return Buffer.from(value).toString('base64url')
}

/** A fresh random secret for one run; never written to results. */
export function randomSecret (): string {
  return randomBytes(32).toString('base64url')
}

/** Sign `{ sub, iat, exp }` with HS256; `ttlSeconds` should outlast the whole run. */
export function signHs256 (secret: string, sub: string, ttlSeconds: number): string {
  const now = Math.floor(Date.now() / 1000)
  const header = base64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))
  const payload = base64url(JSON.stringify({ sub, iat: now, exp: now + ttlSeconds }))
  const signature = createHmac('sha256', secret).update(`${header}.${payload}`).digest('base64url')
  return `${header}.${payload}.${signature}`
}
