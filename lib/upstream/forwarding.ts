import type { FastifyRequest } from 'fastify'
import type { UpstreamHeaders } from '../options/types'

/** A node in a `Forwarded` element (RFC 7239 §6): IPv6 quoted in brackets. */
function forwardedNode (address: string): string {
  return address.includes(':') ? `"[${address}]"` : address
}

/**
 * The forwarding headers the gateway writes from what it saw itself, never from what the client
 * wrote. The address chain is Fastify's: with `trustProxy`, the `X-Forwarded-For` hops it trusts
 * (`request.ips`, up to and including the first untrusted one) followed by the peer; without, the
 * peer alone. Host, protocol and port are Fastify's `request.host` / `request.protocol`, which
 * read `X-Forwarded-Host` / `-Proto` only from a trusted peer. `Forwarded` (RFC 7239) says the
 * same: one `for=` element per hop, the first carrying the original `host` and `proto`. None
 * for a request without a socket (`app.injectWS`).
 */
export function forwardingHeaders (request: FastifyRequest): UpstreamHeaders {
  // An injectWS request has no socket: the gateway saw no peer and no protocol to vouch for.
  if (request.socket === undefined) return {}
  const chain = [...(request.ips ?? [request.ip])].reverse()
  const proto = request.protocol
  const host = request.host
  const forwarded = chain.map((address) => `for=${forwardedNode(address)}`)
  forwarded[0] += `;host="${host.replace(/["\\]/g, '\\$&')}";proto=${proto}`
  return {
    'x-forwarded-for': chain.join(', '),
    'x-forwarded-proto': proto,
    'x-forwarded-host': host,
    'x-forwarded-port': String(request.port ?? (proto === 'https' ? 443 : 80)),
    'x-real-ip': chain[0],
    forwarded: forwarded.join(', ')
  }
}
