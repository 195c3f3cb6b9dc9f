/**
 * What the bench's client processes (load.ts, cluster/clients.ts) share: bounded waits, an error
 * tally, and opening and closing many ws clients (permessage-deflate off) with a bound on the
 * handshakes in progress.
 */
import WebSocket from 'ws'
import type { Target } from './protocol.js'

/** No single open, echo or close may take longer than this before it counts as an error. */
export const STEP_TIMEOUT_MS = 10_000

export const sleep = async (ms: number): Promise<void> => await new Promise((resolve) => setTimeout(resolve, ms))

/** Counts mismatches and failures, keeping the first message for the report. */
export class ErrorTally {
  count = 0
  first: string | undefined
  add (message: string): void {
    this.count++
    this.first ??= message
  }
}

export async function withTimeout<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } finally {
    clearTimeout(timer)
  }
}

/**
 * A ws client once open. `prepare` gets it first, to listen before anything can arrive: a message
 * the server sends at once may be emitted before the code after `await openSocket()` runs.
 */
export async function openSocket (target: Target, prepare?: (socket: WebSocket) => void): Promise<WebSocket> {
  const socket = new WebSocket(target.url, { headers: target.headers, perMessageDeflate: false })
  prepare?.(socket)
  try {
    await withTimeout(new Promise<void>((resolve, reject) => {
      socket.once('open', resolve)
      socket.once('error', reject)
      socket.once('unexpected-response', (_request, response) => {
        reject(new Error(`handshake answered ${response.statusCode ?? '?'}`))
      })
    }), STEP_TIMEOUT_MS, 'open')
  } catch (error) {
    socket.terminate()
    throw error
  }
  return socket
}

/**
 * `count` results of `open`, with at most `concurrency` of them in progress at once; on a
 * failure, those already opened are discarded and the error is thrown.
 */
export async function openMany<T> (count: number, concurrency: number, open: () => Promise<T>, discard: (opened: T) => void): Promise<T[]> {
  const opened: T[] = []
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < count) {
      next++
      opened.push(await open())
    }
  }
  try {
    await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker))
  } catch (error) {
    for (const item of opened) discard(item)
    throw error
  }
  return opened
}

/** Close politely, then terminate whatever has not closed within the step timeout. */
export async function closeAll (sockets: readonly WebSocket[]): Promise<void> {
  const closed = sockets.map(async (socket) => {
    if (socket.readyState === WebSocket.CLOSED) return
    const done = new Promise<void>((resolve) => socket.once('close', () => resolve()))
    socket.close(1000)
    await withTimeout(done, STEP_TIMEOUT_MS, 'close').catch(() => socket.terminate())
  })
  await Promise.all(closed)
}
