/**
 * The experiment behind bench/README.md "Method: what changed the 64 KiB figures": the same peer's
 * 64 KiB throughput step under variants that differ in one thing only, alternating in one run.
 *
 *   node --import tsx bench/probes/order-64k.ts [--peers minimal,gateway] [--rounds 2] [--variants F,P,R,L,I,S,G,W,B]
 *
 * P  as `npm run bench` did: idle (2,000 conns) → 64 B → 1 KiB → 64 KiB, all three processes carried
 * F  fresh backend, relay and load generator: 64 KiB only
 * R  P, but the relay restarted just before 64 KiB (backend and load generator carried)
 * L  P, but the load generator restarted just before 64 KiB (relay and backend carried)
 * I  fresh processes: idle only, then 64 KiB
 * S  fresh processes: 64 B → 1 KiB, then 64 KiB
 * W  fresh processes: 64 KiB with a 5 s warm-up instead of 1 s
 * B  fresh processes, the backend without --expose-gc: 64 KiB only
 * G  fresh processes: two forced full GCs in the relay (what the idle step's RSS reading does), then 64 KiB
 * The relay's collections (count and time) in each 64 KiB step are reported too.
 */
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { forkTs, stop, waitReady } from '../children.js'
import type { Child } from '../children.js'
import { randomSecret, signHs256 } from '../jwt.js'
import { PEERS } from '../peer-registry.js'
import type { Paths, StartedPeer } from '../peer-registry.js'
import { FULL_TIMING, STEPS, runStep } from '../steps.js'
import type { StepContext, StepId } from '../steps.js'

const { values } = parseArgs({ options: { peers: { type: 'string', default: 'minimal,gateway' }, rounds: { type: 'string', default: '2' }, variants: { type: 'string', default: 'F,P,R,L,I,S,G,W,B' } } })
const bench = resolve(__dirname, '..')
const paths: Paths = { root: resolve(bench, '..'), bench, distEntry: join(bench, '..', 'dist', 'index.js') }
const secret = randomSecret()
const headers = { authorization: `Bearer ${signHs256(secret, 'probe', 3600)}`, id: 'Backend_BENCH' }
const step = (id: StepId) => STEPS.find((s) => s.id === id) as (typeof STEPS)[number]

async function variant (peerId: string, name: string): Promise<string> {
  const peer = PEERS.find((p) => p.id === peerId)
  if (peer === undefined) throw new Error(`no peer ${peerId}`)
  const children: Child[] = []
  const started: StartedPeer[] = []
  try {
    const backend = forkTs('backend', join(bench, 'backend.ts'), [], paths.root, name === 'B' ? [] : ['--expose-gc'])
    children.push(backend)
    const port = await waitReady(backend)
    const startRelay = async (): Promise<StartedPeer> => {
      const relay = await peer.start(paths, backend, port, secret)
      started.push(relay)
      return relay
    }
    const startLoad = async (): Promise<Child> => {
      const load = forkTs('load', join(bench, 'load.ts'), [], paths.root)
      children.push(load)
      await waitReady(load)
      return load
    }
    let context: StepContext = { load: await startLoad(), backend, peer: await startRelay(), target: { url: '', headers }, timing: name === 'W' ? { ...FULL_TIMING, warmupMs: 5_000 } : FULL_TIMING }
    context.target.url = context.peer.url
    const before: StepId[] = name === 'P' || name === 'R' || name === 'L' ? ['idle', 'tp64', 'tp1k'] : name === 'I' ? ['idle'] : name === 'S' ? ['tp64', 'tp1k'] : []
    for (const id of before) await runStep(step(id), context)
    if (name === 'G') await context.peer.memoryKiB()
    if (name === 'R') {
      context = { ...context, peer: await startRelay() }
      context.target = { url: context.peer.url, headers }
    }
    if (name === 'L') context = { ...context, load: await startLoad() }
    const gc0 = await context.peer.gcStats?.()
    const m = await runStep(step('tp64k'), context)
    const gc1 = await context.peer.gcStats?.()
    const gc = gc0 !== undefined && gc1 !== undefined
      ? ` | scavenges ${gc1.scavenges - gc0.scavenges} (${(gc1.scavengeMs - gc0.scavengeMs).toFixed(0)} ms), mark-compacts ${gc1.markCompacts - gc0.markCompacts} (${(gc1.markCompactMs - gc0.markCompactMs).toFixed(0)} ms), heap ${gc0.heapUsedKiB}→${gc1.heapUsedKiB} KiB, young generation ${gc0.newSpaceKiB}→${gc1.newSpaceKiB} KiB, rss ${gc1.rssKiB} KiB`
      : ''
    return `${peerId} ${name}: ${Math.round(m.rate)}/s, relay ${m.relayUsPerRoundTrip?.toFixed(1) ?? '?'} µs/rt, backend ${(m.cpu.backend * 1e6 / Math.max(1, m.count)).toFixed(1)} µs/rt, load ${(m.cpu.load * 1e6 / Math.max(1, m.count)).toFixed(1)} µs/rt, others ${m.otherCores.toFixed(2)} cores${gc}`
  } finally {
    for (const relay of started.reverse()) await relay.stop()
    for (const child of children.reverse()) await stop(child)
  }
}

async function main (): Promise<void> {
  const variants = (values.variants ?? '').split(',')
  const peers = (values.peers ?? '').split(',')
  for (let round = 0; round < Number(values.rounds); round++) {
    const order = round % 2 === 0 ? variants : [...variants].reverse()
    for (const name of order) {
      for (const peerId of peers) process.stdout.write(`r${round + 1} ${await variant(peerId, name)}\n`)
    }
  }
}

main().then(() => process.exit(0), (error: unknown) => {
  process.stderr.write(`${String(error)}\n`)
  process.exit(1)
})
