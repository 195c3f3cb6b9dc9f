/**
 * The load generator, a child of run.ts. It waits for one job at a time over IPC, drives ws
 * clients (permessage-deflate off) against the target, checks every echo for its length and
 * text/binary flag, and tells the parent when the measured window starts and ends so the parent
 * can sample /proc at the same instants. Every loop is bounded by a deadline.
 */
import WebSocket from 'ws'
import { ErrorTally, STEP_TIMEOUT_MS, closeAll, openMany, openSocket, sleep, withTimeout } from './ws-clients.js'
import type {
  HandshakeJob, IdleJob, JobRequest, JobResult, LatencyJob, LoadMessage, ReleaseRequest,
  Target, ThroughputJob
} from './protocol.js'
import { percentile } from './stats.js'

function send (message: LoadMessage): void {
  if (process.send !== undefined) process.send(message)
}

/** `count` open ws clients of `target`, at most `concurrency` handshakes at a time. */
async function openSockets (target: Target, count: number, concurrency: number): Promise<WebSocket[]> {
  return await openMany(count, concurrency, async () => await openSocket(target), (socket) => socket.terminate())
}

function payloadOf (size: number): Buffer {
  // ASCII, so a text frame is valid UTF-8 and its byte length equals `size`.
  return Buffer.alloc(size, 'x')
}

function checkEcho (data: WebSocket.RawData, isBinary: boolean, size: number, binary: boolean, errors: ErrorTally): void {
  const length = Buffer.isBuffer(data) ? data.length : (data as ArrayBuffer).byteLength
  if (length !== size) errors.add(`echo of ${length} bytes, expected ${size}`)
  else if (isBinary !== binary) errors.add(`echo flagged ${isBinary ? 'binary' : 'text'}, expected ${binary ? 'binary' : 'text'}`)
}

/**
 * What a job's loops read: whether the window is being measured, and whether to stop. An object,
 * not two lets, so loops written as closures see the changes `measuredWindow` makes.
 */
interface Phase {
  measuring: boolean
  stopping: boolean
}

/**
 * Warm-up, then the measured window (the parent samples /proc when told it starts and ends),
 * then tells the loops to stop. Returns the window's length in seconds.
 */
async function measuredWindow (job: { warmupMs: number, measureMs: number }, phase: Phase): Promise<number> {
  await sleep(job.warmupMs)
  send({ type: 'window-start' })
  const started = performance.now()
  phase.measuring = true
  await sleep(job.measureMs)
  phase.measuring = false
  const seconds = (performance.now() - started) / 1000
  send({ type: 'window-end' })
  phase.stopping = true
  return seconds
}

/** Closed loop: every connection keeps `inFlight` messages outstanding; count round trips. */
async function throughput (job: ThroughputJob): Promise<JobResult> {
  const payload = payloadOf(job.size)
  const errors = new ErrorTally()
  const sockets = await openSockets(job.target, job.connections, 50)
  const phase: Phase = { measuring: false, stopping: false }
  let count = 0
  for (const socket of sockets) {
    socket.on('error', (error) => errors.add(`socket error: ${error.message}`))
    socket.on('close', (code) => { if (!phase.stopping) errors.add(`closed early with ${code}`) })
    socket.on('message', (data, isBinary) => {
      checkEcho(data, isBinary, job.size, job.binary, errors)
      if (phase.measuring) count++
      if (!phase.stopping) socket.send(payload, { binary: job.binary })
    })
    for (let i = 0; i < job.inFlight; i++) socket.send(payload, { binary: job.binary })
  }
  const seconds = await measuredWindow(job, phase)
  await closeAll(sockets)
  return { type: 'result', count, seconds, errors: errors.count, firstError: errors.first }
}

/** Open loop per connection: one message in flight, a think time between round trips. */
async function latency (job: LatencyJob): Promise<JobResult> {
  const payload = payloadOf(job.size)
  const errors = new ErrorTally()
  const sockets = await openSockets(job.target, job.connections, job.connections)
  const samples: number[] = []
  const maxSamples = 2_000_000
  const phase: Phase = { measuring: false, stopping: false }

  const loop = async (socket: WebSocket): Promise<void> => {
    while (!phase.stopping) {
      const echoed = new Promise<void>((resolve, reject) => {
        socket.once('message', (data, isBinary) => {
          checkEcho(data, isBinary, job.size, job.binary, errors)
          resolve()
        })
        socket.once('close', (code) => reject(new Error(`closed early with ${code}`)))
      })
      const sent = performance.now()
      socket.send(payload, { binary: job.binary })
      await withTimeout(echoed, STEP_TIMEOUT_MS, 'echo')
      socket.removeAllListeners('close')
      if (phase.measuring && samples.length < maxSamples) samples.push(performance.now() - sent)
      await sleep(job.thinkMs)
    }
  }
  const loops = sockets.map(async (socket) => await loop(socket).catch((error: Error) => errors.add(error.message)))
  const seconds = await measuredWindow(job, phase)
  await Promise.all(loops)
  await closeAll(sockets)
  const sorted = Float64Array.from(samples).sort()
  return {
    type: 'result',
    count: samples.length,
    seconds,
    p50Ms: percentile(sorted, 0.5),
    p99Ms: percentile(sorted, 0.99),
    samples: samples.length,
    errors: errors.count,
    firstError: errors.first
  }
}

/** `loops` concurrent loops of open → close; a handshake counts once its close completes. */
async function handshakes (job: HandshakeJob): Promise<JobResult> {
  const errors = new ErrorTally()
  const phase: Phase = { measuring: false, stopping: false }
  let count = 0
  const loop = async (): Promise<void> => {
    while (!phase.stopping) {
      try {
        const socket = await openSocket(job.target)
        await closeAll([socket])
        if (phase.measuring) count++
      } catch (error) {
        errors.add((error as Error).message)
        await sleep(10)
      }
    }
  }
  const loops = Array.from({ length: job.loops }, loop)
  const seconds = await measuredWindow(job, phase)
  await Promise.all(loops)
  return { type: 'result', count, seconds, errors: errors.count, firstError: errors.first }
}

let release: (() => void) | undefined

/** Open N connections with one echo each, hold them until the parent has measured RSS. */
async function idle (job: IdleJob): Promise<JobResult> {
  const errors = new ErrorTally()
  const payload = payloadOf(64)
  const started = performance.now()
  const sockets = await openSockets(job.target, job.connections, job.openConcurrency)
  for (const socket of sockets) socket.on('error', (error) => errors.add(`socket error: ${error.message}`))
  await Promise.all(sockets.map(async (socket) => {
    const echoed = new Promise<void>((resolve) => {
      socket.once('message', (data, isBinary) => {
        checkEcho(data, isBinary, 64, false, errors)
        resolve()
      })
    })
    socket.send(payload, { binary: false })
    await withTimeout(echoed, STEP_TIMEOUT_MS, 'echo').catch((error: Error) => errors.add(error.message))
  }))
  const seconds = (performance.now() - started) / 1000
  const released = new Promise<void>((resolve) => { release = resolve })
  send({ type: 'idle-open', opened: sockets.length })
  await withTimeout(released, job.timeoutMs, 'release').catch((error: Error) => errors.add(error.message))
  release = undefined
  await closeAll(sockets)
  return { type: 'result', count: sockets.length, seconds, errors: errors.count, firstError: errors.first }
}

process.on('message', (message: JobRequest | ReleaseRequest) => {
  if (message.type === 'release') {
    release?.()
    return
  }
  const { job } = message
  const running = job.kind === 'throughput'
    ? throughput(job)
    : job.kind === 'latency'
      ? latency(job)
      : job.kind === 'handshakes' ? handshakes(job) : idle(job)
  running.then(send, (error: Error) => send({ type: 'failed', message: error.message }))
})

process.on('disconnect', () => process.exit(0))
// Tell the parent the job handler is attached, so no job message can arrive before it.
if (process.send !== undefined) process.send({ type: 'ready', port: 0 })
