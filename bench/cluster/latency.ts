/**
 * Send latency across instances, from the call to the message at the client (see protocol.ts for
 * the clock): through each peer's API on the other instance, one at a time and 16 at once;
 * through the gateway's REST surface; and on the client's own instance, for reference.
 */
import type { Child } from '../children.js'
import { percentile } from '../stats.js'
import { sleep } from '../ws-clients.js'
import { ask } from './processes.js'
import { open, seqRange, underLoad, untilListed, urlOf } from './measure.js'
import type { Cluster, FigureValue, Keep, Problems, Sizes } from './measure.js'
import type { ClientReport, LatencySamples, Rejections, SendRunDone } from './protocol.js'
import { latencyPayload, monotonicMs } from './protocol.js'
import type { FigureId } from './report.js'

interface LatencyVariant {
  p50: FigureId
  p99: FigureId
  /** Who makes the call: the API of instance A or B, or an HTTP client POSTing to A's REST surface. */
  via: 'a' | 'b' | 'rest'
  burst: number
}

const LATENCY_VARIANTS: readonly LatencyVariant[] = [
  { p50: 'sendP50', p99: 'sendP99', via: 'a', burst: 1 },
  { p50: 'send16P50', p99: 'send16P99', via: 'a', burst: 16 },
  { p50: 'restP50', p99: 'restP99', via: 'rest', burst: 1 },
  { p50: 'localP50', p99: 'localP99', via: 'b', burst: 1 }
]

/** POSTs `count` messages to A's REST surface, one at a time; an answer other than 204 is a rejection. */
async function restRun (cluster: Cluster, id: string, firstSeq: number, count: number, thinkMs: number): Promise<Rejections> {
  const url = `http://127.0.0.1:${cluster.a.port}/@connections/${encodeURIComponent(id)}`
  const result: Rejections = { rejected: [] }
  for (let seq = firstSeq; seq < firstSeq + count; seq++) {
    const response = await fetch(url, {
      method: 'POST',
      headers: { authorization: `Bearer ${cluster.setup.adminKey}`, 'content-type': 'text/plain' },
      body: latencyPayload(seq, monotonicMs())
    })
    const body = await response.text()
    if (response.status !== 204) {
      result.rejected.push(seq)
      result.firstError ??= `${response.status} ${body}`
    }
    await sleep(thinkMs)
  }
  return result
}

/** `count` sends of one instance's API to connection `id`, `burst` at a time. */
async function sendRun (node: Child, id: string, firstSeq: number, count: number, burst: number, thinkMs: number): Promise<Rejections> {
  return await ask<SendRunDone>(node, { type: 'send-run', id, firstSeq, count, burst, thinkMs }, 'send-run-done', 120_000)
}

/** The latency samples of messages `firstSeq` … of the client process that holds the target. */
async function collect (client: Child, firstSeq: number, count: number, rejected: number[]): Promise<LatencySamples> {
  return await ask<LatencySamples>(client, { type: 'latency-collect', firstSeq, count, rejected, timeoutMs: 10_000 }, 'latency-samples', 20_000)
}

/**
 * Rejected calls are problems; one whose message arrived all the same breaks the API's promise
 * that a rejected send is never delivered (its local part excepted, for a fan-out).
 */
function noteRejections (problems: Problems, what: string, result: Rejections, calls: number, arrivedAnyway: number): void {
  if (result.rejected.length === 0) return
  problems.push(`${what}: ${result.rejected.length} of ${calls} calls rejected (first: ${result.firstError ?? '?'})` +
    (arrivedAnyway > 0 ? `; ${arrivedAnyway} of them were delivered all the same` : ''))
}

async function latencyVariant (cluster: Cluster, id: string, variant: LatencyVariant, sizes: Sizes, problems: Problems): Promise<FigureValue[]> {
  const count = sizes.sends * (variant.burst > 1 ? 4 : 1)
  const firstSeq = seqRange(count)
  const { result: samples, load } = await underLoad(async () => {
    const rejected = variant.via === 'rest'
      ? await restRun(cluster, id, firstSeq, count, sizes.thinkMs)
      : await sendRun(variant.via === 'a' ? cluster.a.child : cluster.b.child, id, firstSeq, count, variant.burst, sizes.thinkMs)
    const collected = await collect(cluster.clients[0], firstSeq, count, rejected.rejected)
    noteRejections(problems, `${variant.p50} sends`, rejected, count, collected.rejectedArrived)
    return collected
  })
  if (samples.missing > 0) problems.push(`${variant.p50}: ${samples.missing} of ${count} messages never arrived`)
  const sorted = Float64Array.from(samples.samples).sort()
  return [
    { figure: variant.p50, value: percentile(sorted, 0.5), load },
    { figure: variant.p99, value: percentile(sorted, 0.99), load }
  ]
}

/**
 * Send latency, from the call to the message at the client: one client on B; sends made on A (one
 * at a time, then 16 at once), through A's REST surface (gateway only: Socket.IO has none), and on
 * B itself (the same-instance reference). A warm-up run comes first.
 */
export async function measureLatency (cluster: Cluster, sizes: Sizes, problems: Problems, keep: Keep): Promise<void> {
  const client = cluster.clients[0]
  const [id] = await open(cluster, client, [{ url: urlOf(cluster.peer, cluster.b.port), count: 1 }], false)
  await untilListed(cluster, 1)
  const warmup = seqRange(sizes.sends)
  const warm = await sendRun(cluster.a.child, id, warmup, sizes.sends, 1, 1)
  noteRejections(problems, 'warm-up sends', warm, sizes.sends, (await collect(client, warmup, sizes.sends, warm.rejected)).rejectedArrived)
  for (const variant of LATENCY_VARIANTS) {
    if (variant.via === 'rest' && cluster.peer !== 'gateway') continue
    keep(await latencyVariant(cluster, id, variant, sizes, problems))
  }
  await ask<ClientReport>(client, { type: 'close-all' }, 'client-report', 30_000)
}
