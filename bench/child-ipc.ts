/**
 * The IPC side of a server child (backend or Node relay peer): announce the port once listening,
 * answer GC/RSS requests, and exit when the parent goes away so no child outlives a crashed run.
 */
import { PerformanceObserver } from 'node:perf_hooks'
import { getHeapSpaceStatistics } from 'node:v8'
import type { GcRequest, GcStatsMessage, GcStatsRequest, MemoryMessage, ReadyMessage } from './protocol.js'

/** Time spent in V8 collections so far, by kind (only when BENCH_GC_STATS=1: observing costs a little). */
const gcStats = { scavenges: 0, scavengeMs: 0, markCompacts: 0, markCompactMs: 0 }
if (process.env.BENCH_GC_STATS === '1') {
  new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      // NODE_PERFORMANCE_GC_MAJOR = 4 (Mark-Compact); everything else counts as young-generation work.
      const kind = (entry as { detail?: { kind?: number } }).detail?.kind
      if (kind === 4) {
        gcStats.markCompacts++
        gcStats.markCompactMs += entry.duration
      } else {
        gcStats.scavenges++
        gcStats.scavengeMs += entry.duration
      }
    }
  }).observe({ entryTypes: ['gc'] })
}

function send (message: ReadyMessage | MemoryMessage | GcStatsMessage): void {
  if (process.send !== undefined) process.send(message)
}

/** Tell the orchestrator which port we listen on, and start answering its requests. */
export function announceReady (port: number): void {
  process.on('message', (message: GcRequest | GcStatsRequest) => {
    if (message.type === 'gc-stats') {
      const { heapUsed, rss } = process.memoryUsage()
      const newSpace = getHeapSpaceStatistics().find((space) => space.space_name === 'new_space')?.space_size ?? 0
      send({ type: 'gc-stats', ...gcStats, heapUsedKiB: Math.round(heapUsed / 1024), newSpaceKiB: Math.round(newSpace / 1024), rssKiB: Math.round(rss / 1024) })
      return
    }
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
