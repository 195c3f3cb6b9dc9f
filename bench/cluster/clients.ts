/**
 * A client process of the cluster bench, a child of bench/cluster.ts: it opens the connections it
 * is asked for (gateway clients with a token, or Socket.IO clients speaking Engine.IO v4 over raw
 * ws, so both peers' clients cost the same), stamps every pushed message on arrival with the
 * machine-wide monotonic clock, and reports: latency samples on request, and each broadcast once
 * all its connections have it. Each connection checks that broadcasts come once each, in order.
 */
import { io as socketIoClient, type Socket } from 'socket.io-client'
import WebSocket from 'ws'
import type {
  ClientReport, ClientRequest, Delivered, LatencyCollect, LatencySamples, OpenRequest, OpenTarget, Opened
} from './protocol.js'
import { monotonicMs, parsePayload } from './protocol.js'
import { ErrorTally, STEP_TIMEOUT_MS, openMany, openSocket, withTimeout } from '../ws-clients.js'

/** One connection: how to end it, and the last broadcast it got (broadcasts come in order). */
interface Connection {
  id: string
  lastSeq?: number
  /** Set when this process dropped it, so its close is not counted as an error. */
  dropped: boolean
  end: () => void
}

function newConnection (): Connection {
  return { id: '', dropped: false, end: () => {} }
}

function drop (connection: Connection): void {
  connection.dropped = true
  connection.end()
}

const errors = new ErrorTally()
let connections: Connection[] = []
/** Per broadcast: arrivals so far and when the first and the last came. */
let broadcasts = new Map<number, { count: number, firstAt: number, lastAt: number }>()
/** Per message sent to one connection: ms from the call to its arrival. */
let latencies = new Map<number, number>()
let latencyWaiter: (() => void) | undefined

function reply (message: Opened | LatencySamples | Delivered | ClientReport | { type: 'failed', message: string }): void {
  process.send?.(message)
}

/** A pushed message has arrived at `connection` (`at` was read first thing on arrival). */
function arrived (connection: Connection, text: string, at: number): void {
  const payload = parsePayload(text)
  if (payload === undefined) return errors.add(`unexpected message ${JSON.stringify(text.slice(0, 40))}`)
  if (payload.kind === 'L') {
    latencies.set(payload.seq, at - payload.calledAt)
    return latencyWaiter?.()
  }
  const { seq } = payload
  if (connection.lastSeq !== undefined && seq !== connection.lastSeq + 1) {
    errors.add(`a connection got broadcast ${seq} after ${connection.lastSeq}`)
  }
  connection.lastSeq = seq
  const entry = broadcasts.get(seq) ?? { count: 0, firstAt: at, lastAt: at }
  broadcasts.set(seq, entry)
  entry.count++
  entry.lastAt = at
  if (entry.count === connections.length) reply({ type: 'delivered', seq, firstAt: entry.firstAt, lastAt: at })
}

function watchClose (socket: WebSocket, connection: Connection): void {
  socket.on('error', (error) => errors.add(`socket error: ${error.message}`))
  socket.on('close', (code) => { if (!connection.dropped) errors.add(`closed by the server with ${code}`) })
}

/** A gateway client: its id is the `x-connection-id` of the 101 response. */
async function openGateway (target: OpenTarget, headers: Record<string, string>): Promise<Connection> {
  const connection = newConnection()
  const socket = await openSocket({ url: target.url, headers }, (opening) => {
    opening.once('upgrade', (response) => { connection.id = String(response.headers['x-connection-id']) })
    opening.on('message', (data) => {
      const at = monotonicMs()
      arrived(connection, String(data), at)
    })
  })
  connection.end = () => socket.terminate()
  watchClose(socket, connection)
  return connection
}

/**
 * A Socket.IO client in Engine.IO v4 over raw ws: the server opens with `0{…}`, the client joins
 * the main namespace with `40` and is in once it reads `40{"sid":…}`; an event is
 * `42["m","<data>"]`; the server's pings (`2`) are answered (`3`) so it keeps the connection.
 */
async function openEngineIo (target: OpenTarget): Promise<Connection> {
  const connection = newConnection()
  let join: { resolve: () => void, reject: (error: Error) => void } | undefined
  const joined = new Promise<void>((resolve, reject) => { join = { resolve, reject } })
  const onMessage = (opening: WebSocket, data: WebSocket.RawData): void => {
    const at = monotonicMs()
    const text = String(data)
    if (text.startsWith('42')) {
      const [, message] = JSON.parse(text.slice(2)) as [string, string]
      arrived(connection, message, at)
    } else if (text === '2') {
      opening.send('3')
    } else if (text.startsWith('40')) {
      connection.id = (JSON.parse(text.slice(2)) as { sid: string }).sid
      join?.resolve()
    } else if (text.startsWith('0')) {
      opening.send('40')
    } else if (text.startsWith('44')) {
      join?.reject(new Error(`namespace refused: ${text}`))
    }
  }
  const socket = await openSocket({ url: `${target.url}/socket.io/?EIO=4&transport=websocket`, headers: {} }, (opening) => {
    opening.on('message', (data) => onMessage(opening, data))
  })
  connection.end = () => socket.terminate()
  watchClose(socket, connection)
  try {
    await withTimeout(joined, STEP_TIMEOUT_MS, 'socket.io connect')
  } catch (error) {
    socket.terminate()
    throw error
  }
  return connection
}

/** A real socket.io-client (the witness): what it receives is counted like any other connection. */
async function openSocketIoClient (target: OpenTarget): Promise<Connection> {
  const socket: Socket = socketIoClient(target.url, {
    transports: ['websocket'],
    reconnection: false,
    forceNew: true,
    // Handed to ws as it is (engine.io-client 6.6); its type admits only `{ threshold }`.
    perMessageDeflate: false as unknown as { threshold: number }
  })
  try {
    await withTimeout(new Promise<void>((resolve, reject) => {
      socket.once('connect', resolve)
      socket.once('connect_error', reject)
    }), STEP_TIMEOUT_MS, 'socket.io-client connect')
  } catch (error) {
    socket.close()
    throw error
  }
  const connection = newConnection()
  connection.id = socket.id ?? ''
  connection.end = () => socket.close()
  socket.on('m', (message: string) => arrived(connection, message, monotonicMs()))
  socket.on('disconnect', (reason) => { if (!connection.dropped) errors.add(`socket.io-client disconnected: ${reason}`) })
  return connection
}

async function open (request: OpenRequest): Promise<Opened> {
  const opened: Connection[] = []
  const witness = request.peer === 'socketio' && request.witness
  try {
    for (const target of request.targets) {
      if (witness && target.count > 0) opened.push(await openSocketIoClient(target))
      const openOne = request.peer === 'gateway'
        ? async () => await openGateway(target, request.headers)
        : async () => await openEngineIo(target)
      opened.push(...await openMany(Math.max(0, target.count - (witness ? 1 : 0)), request.concurrency, openOne, drop))
    }
  } catch (error) {
    for (const connection of opened) drop(connection)
    throw error
  }
  connections.push(...opened)
  return { type: 'opened', ids: opened.map((connection) => connection.id) }
}

async function collect (request: LatencyCollect): Promise<LatencySamples> {
  const rejected = new Set(request.rejected)
  const all = Array.from({ length: request.count }, (_, i) => request.firstSeq + i)
  const expected = all.filter((seq) => !rejected.has(seq))
  const complete = (): boolean => expected.every((seq) => latencies.has(seq))
  if (!complete()) {
    await withTimeout(new Promise<void>((resolve) => {
      latencyWaiter = () => { if (complete()) resolve() }
    }), request.timeoutMs, 'latency samples').catch(() => {})
    latencyWaiter = undefined
  }
  const samples = expected.flatMap((seq) => latencies.get(seq) ?? [])
  const rejectedArrived = request.rejected.filter((seq) => latencies.has(seq)).length
  for (const seq of all) latencies.delete(seq)
  return { type: 'latency-samples', samples, missing: expected.length - samples.length, rejectedArrived }
}

function report (): ClientReport {
  const received: Record<string, number> = {}
  for (const [seq, entry] of broadcasts) received[seq] = entry.count
  return { type: 'client-report', connections: connections.length, received, errors: errors.count, firstError: errors.first }
}

/** Drops every connection and starts afresh (counts are reported first). */
function closeAll (): ClientReport {
  const result = report()
  for (const connection of connections) drop(connection)
  connections = []
  broadcasts = new Map()
  latencies = new Map()
  return result
}

async function handle (request: ClientRequest): Promise<Opened | LatencySamples | ClientReport> {
  if (request.type === 'open') return await open(request)
  if (request.type === 'latency-collect') return await collect(request)
  return request.type === 'close-all' ? closeAll() : report()
}

process.on('message', (request: ClientRequest) => {
  handle(request).then(reply, (error: unknown) => reply({ type: 'failed', message: error instanceof Error ? error.message : String(error) }))
})
process.on('disconnect', () => process.exit(0))
process.send?.({ type: 'ready', port: 0 })
