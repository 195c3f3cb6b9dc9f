import { MessageHookFailedError } from '../../errors'
import type { BackendHeaders, GatewayConnection } from '../../options/message-types'

/** The headers only the gateway writes. */
const IDENTITY = new Set(['x-connection-id', 'x-route-key', 'x-user-sub', 'x-correlation-id'])

/**
 * The headers a backend gets: the route's own (fixed, or from its function of the connection),
 * then the identity the gateway vouches for, last, so nothing can overwrite it — the connection
 * id, the token's `sub`, the route key and, for a request, its correlation id. Nothing the client
 * sent on its upgrade is copied.
 */
export function backendHeaders (configured: BackendHeaders, connection: GatewayConnection, key: string, correlationId?: string | number): Record<string, string> {
  let own: Record<string, string>
  if (typeof configured === 'function') {
    try {
      own = configured(connection)
    } catch (err) {
      connection.request.log.error({ err, route: key }, 'ws gateway route headers failed')
      throw new MessageHookFailedError()
    }
  } else {
    own = configured
  }
  const headers: Record<string, string> = {}
  for (const [name, value] of Object.entries(own)) {
    if (!IDENTITY.has(name.toLowerCase())) headers[name.toLowerCase()] = value
  }
  headers['x-connection-id'] = connection.id
  headers['x-route-key'] = key
  if (connection.sub !== undefined) headers['x-user-sub'] = connection.sub
  if (correlationId !== undefined) headers['x-correlation-id'] = String(correlationId)
  return headers
}
