/**
 * The IPC side of a server child (backend or Node relay peer): announce the port once listening,
 * answer GC/RSS requests, and exit when the parent goes away so no child outlives a crashed run.
 */
import type { GcRequest, MemoryMessage, ReadyMessage } from './protocol.js'

function send (message: ReadyMessage | MemoryMessage): void {
  if (process.send !== undefined) process.send(message)
}

/** Tell the orchestrator which port we listen on, and start answering its requests. */
export function announceReady (port: number): void {
  process.on('message', (message: GcRequest) => {
    if (message.type !== 'gc') return
    const gc = (globalThis as { gc?: () => void }).gc
    if (gc !== undefined) {
      // Two passes: the first may only queue finalizers (ws/net handles) that the second frees.
      gc()
      gc()
    }
    send({ type: 'memory', gc: gc !== undefined, rssKiB: Math.round(process.memoryUsage().rss / 1024) })
  })
  // The IPC channel closes when the parent exits for any reason, including SIGKILL.
  process.on('disconnect', () => process.exit(0))
  send({ type: 'ready', port })
}

/** Port or URL argument handed down by the orchestrator. */
export function requiredArg (index: number, name: string): string {
  const value = process.argv[index + 2]
  if (value === undefined || value === '') {
    process.stderr.write(`missing argument ${index + 1}: ${name}\n`)
    process.exit(2)
  }
  return value
}
