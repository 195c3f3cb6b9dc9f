/**
 * Every process the harness starts goes through here, so that each can be stopped by its PID at
 * the end of a block, and all of them on SIGINT, SIGTERM or a crash of the orchestrator.
 */
import { fork, spawn } from 'node:child_process'
import type { ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { childPids } from './proc.js'
import type { GcRequest, GcStatsMessage, GcStatsRequest, MemoryMessage, ReadyMessage } from './protocol.js'

export interface Child {
  name: string
  pid: number
  process: ChildProcess
  /** Last lines of stderr, for error messages when the child dies early. */
  stderrTail: string[]
}

const live = new Set<Child>()

function track (name: string, child: ChildProcess): Child {
  if (child.pid === undefined) throw new Error(`${name} did not start`)
  const entry: Child = { name, pid: child.pid, process: child, stderrTail: [] }
  child.stderr?.setEncoding('utf8')
  child.stderr?.on('data', (chunk: string) => {
    entry.stderrTail.push(...chunk.split('\n').filter((line) => line !== ''))
    entry.stderrTail.splice(0, Math.max(0, entry.stderrTail.length - 20))
  })
  child.on('exit', () => live.delete(entry))
  live.add(entry)
  return entry
}

/** Start a TypeScript file as a Node child with IPC, through the tsx loader; `env` adds to ours. */
export function forkTs (name: string, file: string, args: string[], cwd: string, nodeFlags: string[] = [], env: Record<string, string> = {}): Child {
  const child = fork(file, args, {
    cwd,
    env: { ...process.env, ...env },
    execArgv: ['--import', 'tsx', ...nodeFlags],
    stdio: ['ignore', 'inherit', 'pipe', 'ipc']
  })
  return track(name, child)
}

/** Start a non-Node program (nginx); stdout is dropped, stderr kept for errors. */
export function spawnProgram (name: string, command: string, args: string[]): Child {
  return track(name, spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] }))
}

function diedError (child: Child, what: string): Error {
  const tail = child.stderrTail.slice(-5).join('\n  ')
  return new Error(`${child.name} ${what}${tail === '' ? '' : `:\n  ${tail}`}`)
}

/** Resolve with the next IPC message of the given type, or reject on exit or timeout. */
export async function nextMessage<T extends { type: string }> (child: Child, type: T['type'], timeoutMs: number): Promise<T> {
  return await new Promise<T>((resolve, reject) => {
    const onMessage = (message: { type?: string }): void => {
      if (message.type === type) finish(undefined, message as T)
      else if (message.type === 'failed') finish(new Error(`${child.name}: ${(message as { message?: string }).message ?? 'failed'}`))
    }
    const onExit = (code: number | null, signal: string | null): void => {
      finish(diedError(child, `exited (${code ?? signal ?? '?'}) while waiting for '${type}'`))
    }
    const timer = setTimeout(() => finish(diedError(child, `sent no '${type}' within ${timeoutMs} ms`)), timeoutMs)
    const finish = (error: Error | undefined, value?: T): void => {
      clearTimeout(timer)
      child.process.off('message', onMessage)
      child.process.off('exit', onExit)
      if (error !== undefined) reject(error)
      else resolve(value as T)
    }
    child.process.on('message', onMessage)
    child.process.on('exit', onExit)
  })
}

export async function waitReady (child: Child, timeoutMs = 20_000): Promise<number> {
  return (await nextMessage<ReadyMessage>(child, 'ready', timeoutMs)).port
}

/** Ask a Node server child for a full GC and its RSS afterwards. */
export async function requestGc (child: Child, timeoutMs = 10_000): Promise<MemoryMessage> {
  const reply = nextMessage<MemoryMessage>(child, 'memory', timeoutMs)
  child.process.send({ type: 'gc' } satisfies GcRequest)
  return await reply
}

/** Ask a Node server child started with BENCH_GC_STATS=1 for its collections so far. */
export async function requestGcStats (child: Child, timeoutMs = 10_000): Promise<GcStatsMessage> {
  const reply = nextMessage<GcStatsMessage>(child, 'gc-stats', timeoutMs)
  child.process.send({ type: 'gc-stats' } satisfies GcStatsRequest)
  return await reply
}

function descendants (pid: number): number[] {
  const found: number[] = []
  for (const child of childPids(pid)) found.push(child, ...descendants(child))
  return found
}

function killPid (pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal)
  } catch {
    // Already gone.
  }
}

/** SIGTERM the child and any processes it forked; SIGKILL whatever is left after `graceMs`. */
export async function stop (child: Child, graceMs = 3_000): Promise<void> {
  const forked = descendants(child.pid)
  if (child.process.exitCode === null && child.process.signalCode === null) {
    const exited = once(child.process, 'exit')
    killPid(child.pid, 'SIGTERM')
    const timer = setTimeout(() => killPid(child.pid, 'SIGKILL'), graceMs)
    await exited
    clearTimeout(timer)
  }
  for (const pid of forked) killPid(pid, 'SIGKILL')
  live.delete(child)
}

/** Every process the harness runs now: the children it started and whatever they forked. */
export function livePids (): number[] {
  return [...live].flatMap((child) => [child.pid, ...descendants(child.pid)])
}

export async function stopAll (): Promise<void> {
  await Promise.all([...live].map(stop))
}

/** Last resort from a synchronous 'exit' handler: SIGKILL every child still tracked. */
export function killAllNow (): void {
  for (const child of live) {
    for (const pid of descendants(child.pid)) killPid(pid, 'SIGKILL')
    killPid(child.pid, 'SIGKILL')
  }
  live.clear()
}
