/**
 * Broadcast fan-out from instance A to connections spread over A and B: one broadcast at a time,
 * and back-to-back; time to the last delivery anywhere, deliveries per second, and what the
 * servers spent per delivery (CPU, write system calls).
 */
import type { Child } from '../children.js'
import { percentile } from '../stats.js'
import { sleep, withTimeout } from '../ws-clients.js'
import { ask } from './processes.js'
import { open, seqRange, underLoad, untilListed, urlOf } from './measure.js'
import type { Cluster, Keep, Problems, Sizes } from './measure.js'
import type { BroadcastDone, ClientReport, Delivered } from './protocol.js'

/** Collects the client processes' `delivered` reports, so a broadcast's last arrival is known. */
class Deliveries {
  private readonly bySeq = new Map<number, Delivered[]>()
  private waiter: (() => void) | undefined
  private readonly listener = (message: Delivered): void => {
    if (message.type !== 'delivered') return
    this.bySeq.set(message.seq, [...(this.bySeq.get(message.seq) ?? []), message])
    this.waiter?.()
  }

  constructor (private readonly clients: readonly Child[]) {
    for (const client of clients) client.process.on('message', this.listener)
  }

  /** The latest arrival over every client process of every broadcast `seqs`, once all have arrived. */
  async lastArrival (seqs: readonly number[], timeoutMs: number): Promise<number> {
    const complete = (): boolean => seqs.every((seq) => (this.bySeq.get(seq)?.length ?? 0) === this.clients.length)
    if (!complete()) {
      const done = new Promise<void>((resolve) => { this.waiter = () => { if (complete()) resolve() } })
      await withTimeout(done, timeoutMs, `delivery of broadcasts ${seqs[0] ?? '?'}… to every connection`).finally(() => {
        this.waiter = undefined
      })
    }
    return Math.max(...seqs.flatMap((seq) => (this.bySeq.get(seq) ?? []).map((delivered) => delivered.lastAt)))
  }

  detach (): void {
    for (const client of this.clients) client.process.off('message', this.listener)
  }
}

/** Splits `count` connections as evenly as possible over `parts`. */
function split (count: number, parts: number): number[] {
  return Array.from({ length: parts }, (_, i) => Math.floor(count / parts) + (i < count % parts ? 1 : 0))
}

/**
 * `count` broadcasts back-to-back on A; resolves with the call time and the last arrival anywhere
 * of those that resolved. A rejected one is a problem, and its reach is reported: only the local
 * part (A's connections) may have gone out.
 */
async function broadcastOnA (cluster: Cluster, deliveries: Deliveries, count: number, total: number, problems: Problems): Promise<{ calledAt: number, returnedAt: number, lastAt: number }> {
  const firstSeq = seqRange(count)
  const done = await ask<BroadcastDone>(cluster.a.child, { type: 'broadcast-run', firstSeq, count }, 'broadcast-done', 60_000)
  if (done.connections.some((n) => n !== total)) problems.push(`broadcast addressed ${done.connections.join(', ')} connections, not ${total}`)
  const seqs = Array.from({ length: count }, (_, i) => firstSeq + i).filter((seq) => !done.rejected.includes(seq))
  const lastAt = await deliveries.lastArrival(seqs, 60_000)
  if (done.rejected.length > 0) {
    const reports = await Promise.all(cluster.clients.map(async (client) => await ask<ClientReport>(client, { type: 'report' }, 'client-report', 30_000)))
    const reach = done.rejected.map((seq) => reports.reduce((sum, report) => sum + (report.received[seq] ?? 0), 0))
    problems.push(`broadcast: ${done.rejected.length} of ${count} calls rejected (first: ${done.firstError ?? '?'}); ` +
      `they reached ${reach.join(', ')} of ${total} connections (${cluster.aConnections} are on A, whose local part goes out before the Redis call)`)
  }
  return { calledAt: done.calledAt, returnedAt: done.returnedAt, lastAt }
}

/**
 * Broadcast fan-out: `connections` spread evenly over A and B, opened by both client processes
 * (for Socket.IO, one of each process's connections to each instance is a socket.io-client).
 * Then, from A: 3 warm-up broadcasts; `broadcasts` one at a time, each waiting for its last
 * delivery (figures: median time to the last delivery, and connections ÷ that time); and
 * `broadcasts` back-to-back (figures: every delivery ÷ time to the last one, and that time).
 */
export async function measureBroadcast (cluster: Cluster, sizes: Sizes, problems: Problems, keep: Keep): Promise<void> {
  const perClient = split(sizes.connections, cluster.clients.length)
  cluster.aConnections = 0
  await Promise.all(cluster.clients.map(async (client, i) => {
    const [toA = 0, toB = 0] = split(perClient[i] ?? 0, 2)
    cluster.aConnections += toA
    await open(cluster, client, [{ url: urlOf(cluster.peer, cluster.a.port), count: toA }, { url: urlOf(cluster.peer, cluster.b.port), count: toB }], true)
  }))
  const total = sizes.connections
  await untilListed(cluster, total)
  const deliveries = new Deliveries(cluster.clients)
  try {
    for (let i = 0; i < 3; i++) await broadcastOnA(cluster, deliveries, 1, total, problems)
    const instances = [cluster.a.child.pid, cluster.b.child.pid]
    const deliveredAll = total * sizes.broadcasts
    const { result: lasts, load: oneLoad, cost: oneCost } = await underLoad(async () => {
      const lasts: number[] = []
      for (let i = 0; i < sizes.broadcasts; i++) {
        const { calledAt, lastAt } = await broadcastOnA(cluster, deliveries, 1, total, problems)
        lasts.push(lastAt - calledAt)
        await sleep(20)
      }
      return lasts
    }, cluster.serverPids, instances)
    const median = percentile(Float64Array.from(lasts).sort(), 0.5)
    keep([
      { figure: 'oneLastMs', value: median, load: oneLoad },
      { figure: 'oneRate', value: total / (median / 1000), load: oneLoad },
      { figure: 'oneCpuUs', value: oneCost.cpuSeconds * 1e6 / deliveredAll, load: oneLoad },
      { figure: 'oneWrites', value: oneCost.instanceWrites / deliveredAll, load: oneLoad }
    ])
    const { result: burst, load: burstLoad, cost: burstCost } = await underLoad(async () =>
      await broadcastOnA(cluster, deliveries, sizes.broadcasts, total, problems), cluster.serverPids, instances)
    const burstMs = burst.lastAt - burst.calledAt
    keep([
      { figure: 'burstRate', value: deliveredAll / (burstMs / 1000), load: burstLoad },
      { figure: 'burstLastMs', value: burstMs, load: burstLoad },
      { figure: 'burstCallsMs', value: burst.returnedAt - burst.calledAt, load: burstLoad },
      { figure: 'burstCpuUs', value: burstCost.cpuSeconds * 1e6 / deliveredAll, load: burstLoad },
      { figure: 'burstWrites', value: burstCost.instanceWrites / deliveredAll, load: burstLoad }
    ])
  } finally {
    deliveries.detach()
    for (const client of cluster.clients) {
      const report = await ask<ClientReport>(client, { type: 'close-all' }, 'client-report', 30_000)
      if (report.errors > 0) problems.push(`client process: ${report.errors} errors, first: ${report.firstError ?? '?'}`)
    }
  }
}
