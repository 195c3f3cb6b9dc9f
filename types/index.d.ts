// The package entry's types, as users import it. At run time `require('fastify-ws-gateway')` is
// the plugin itself, with `default` and `wsGateway` pointing back at it and `errors` and
// `CloseCode` on it (the end of lib/index.ts). `export =` with a merged namespace says exactly
// that, so the default import, the named imports and `require` all give the plugin under every
// module setting (nodenext as ESM or CommonJS, commonjs, bundler), as Fastify's own plugins
// (@fastify/websocket, @fastify/jwt) declare theirs. The declarations come from the ones tsc
// writes for lib/ into dist/; test/package.test.ts fails when this list and lib/index.ts differ.
import type * as entry from '../dist/index'

type WsGatewayPlugin = typeof entry.wsGateway

declare namespace wsGateway {
  export type BackendConfig = entry.BackendConfig
  export type BackendOption = entry.BackendOption
  export type BackendTlsOptions = entry.BackendTlsOptions
  export type GatewayJwtOptions = entry.GatewayJwtOptions
  export type GatewayJwtVerifyOptions = entry.GatewayJwtVerifyOptions
  export type BalanceMode = entry.BalanceMode
  export type DnsOptions = entry.DnsOptions
  export type HealthOptions = entry.HealthOptions
  export type MetricsOptions = entry.MetricsOptions
  export type ProbeOptions = entry.ProbeOptions
  export type UpstreamHeaders = entry.UpstreamHeaders
  export type IdentityHeadersOption = entry.IdentityHeadersOption
  export type JwksOptions = entry.JwksOptions
  export type JwksJwtOptions = entry.JwksJwtOptions
  export type WsGatewayOptions = entry.WsGatewayOptions
  export type BackendStats = entry.BackendStats
  export type GatewayStats = entry.GatewayStats
  export type WsGatewayStats = entry.WsGatewayStats
  export type WsGatewayDecorator = entry.WsGatewayDecorator
  export type Traffic = entry.Traffic
  export type TokenClaims = entry.TokenClaims
  export type BroadcastOptions = entry.BroadcastOptions
  export type ClusterStats = entry.ClusterStats
  export type ConnectionApi = entry.ConnectionApi
  export type ConnectionId = entry.ConnectionId
  export type ConnectionInfo = entry.ConnectionInfo
  export type ConnectionPage = entry.ConnectionPage
  export type FanOut = entry.FanOut
  export type ListQuery = entry.ListQuery
  export type SendOptions = entry.SendOptions
  export type ApiStats = entry.ApiStats
  export type ClusterOptions = entry.ClusterOptions
  export type ManagementApiOptions = entry.ManagementApiOptions
  export type AnnounceOptions = entry.AnnounceOptions

  export const errors: typeof entry.errors
  export const CloseCode: typeof entry.CloseCode
  export const DEFAULT_DROP_HEADERS: typeof entry.DEFAULT_DROP_HEADERS
  export const createQueueWorker: typeof entry.createQueueWorker

  export type MessagesOptions = entry.MessagesOptions
  export type MessageRoute = entry.MessageRoute
  export type MessageMiddleware = entry.MessageMiddleware
  export type MessageHook = entry.MessageHook
  export type MessageRateLimit = entry.MessageRateLimit
  export type CircuitBreakerOptions = entry.CircuitBreakerOptions
  export type RouteKeyFunction = entry.RouteKeyFunction
  export type HttpTarget = entry.HttpTarget
  export type WsTarget = entry.WsTarget
  export type QueueTarget = entry.QueueTarget
  export type BackendHeaders = entry.BackendHeaders
  export type GatewayConnection = entry.GatewayConnection
  export type MessageStats = entry.MessageStats
  export type QueueRequest = entry.QueueRequest
  export type QueueWorker = entry.QueueWorker
  export type QueueWorkerOptions = entry.QueueWorkerOptions
  export const announceBackend: typeof entry.announceBackend

  export const wsGateway: WsGatewayPlugin
  export { wsGateway as default }
}

/** The gateway plugin: `await app.register(wsGateway, { backends, jwt })`. */
declare function wsGateway (...params: Parameters<WsGatewayPlugin>): ReturnType<WsGatewayPlugin>
export = wsGateway
