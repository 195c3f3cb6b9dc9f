/**
 * The cluster bench's figures, their means over rounds, and the markdown written to stdout and
 * bench/results/: the gateway against Socket.IO with ratios, handshakes on 1 and 2 workers, and
 * the machine's load during every block.
 */
import { machineMarkdown } from '../machine.js'
import type { MachineInfo } from '../machine.js'
import type { RunMeta } from '../orchestrator.js'
import type { FigureValue, Load, Sizes } from './measure.js'

export type FigureId =
  | 'sendP50' | 'sendP99' | 'send16P50' | 'send16P99' | 'restP50' | 'restP99' | 'localP50' | 'localP99'
  | 'oneLastMs' | 'oneRate' | 'oneCpuUs' | 'oneWrites' | 'burstRate' | 'burstLastMs' | 'burstCallsMs' | 'burstCpuUs' | 'burstWrites'
  | 'handshakesSolo' | 'handshakes1' | 'handshakes2' | 'hsCpuSolo' | 'hsCpu1' | 'hsCpu2'

/** Who a block measured: one of the two peers, or the gateway's handshakes on workers. */
export type BlockId = 'gateway' | 'socketio' | 'handshakes'

interface FigureDef {
  id: FigureId
  label: (sizes: Sizes) => string
  higherIsBetter: boolean
  format: (value: number) => string
}

const ms = (value: number): string => value.toFixed(value < 10 ? 2 : 1)
const rate = (value: number): string => value >= 10_000 ? `${(value / 1000).toFixed(1)}k` : Math.round(value).toLocaleString('en-US')
const count = (value: number): string => value.toLocaleString('en-US')
const fixed = (digits: number) => (value: number): string => value.toFixed(digits)

/** The figures comparing the two peers, in table order. */
export const PEER_FIGURES: readonly FigureDef[] = [
  { id: 'sendP50', label: () => 'send, API on A → client on B, one at a time: p50 ms', higherIsBetter: false, format: ms },
  { id: 'sendP99', label: () => '… p99 ms', higherIsBetter: false, format: ms },
  { id: 'send16P50', label: () => 'send, API on A → client on B, 16 at once: p50 ms', higherIsBetter: false, format: ms },
  { id: 'send16P99', label: () => '… p99 ms', higherIsBetter: false, format: ms },
  { id: 'restP50', label: () => 'send, REST POST to A → client on B, one at a time: p50 ms', higherIsBetter: false, format: ms },
  { id: 'restP99', label: () => '… p99 ms', higherIsBetter: false, format: ms },
  { id: 'localP50', label: () => 'send, API on B → its own client (no Redis hop): p50 ms', higherIsBetter: false, format: ms },
  { id: 'localP99', label: () => '… p99 ms', higherIsBetter: false, format: ms },
  { id: 'oneLastMs', label: (s) => `broadcast on A to ${count(s.connections)} conns, one at a time: ms to the last delivery (median of ${s.broadcasts})`, higherIsBetter: false, format: ms },
  { id: 'oneRate', label: () => '… deliveries/s (connections ÷ that time)', higherIsBetter: true, format: rate },
  { id: 'oneCpuUs', label: () => '… server CPU µs per delivery (A + B + Redis, + the backend for the gateway)', higherIsBetter: false, format: fixed(1) },
  { id: 'oneWrites', label: () => '… write system calls per delivery (A + B)', higherIsBetter: false, format: fixed(2) },
  { id: 'burstRate', label: (s) => `${s.broadcasts} broadcasts back-to-back: deliveries/s`, higherIsBetter: true, format: rate },
  { id: 'burstLastMs', label: () => '… ms from the first call to the last delivery', higherIsBetter: false, format: ms },
  { id: 'burstCallsMs', label: () => '… ms until the last call on A had returned', higherIsBetter: false, format: ms },
  { id: 'burstCpuUs', label: () => '… server CPU µs per delivery', higherIsBetter: false, format: fixed(1) },
  { id: 'burstWrites', label: () => '… write system calls per delivery (A + B)', higherIsBetter: false, format: fixed(2) }
]

/** Handshakes per second, and the gateway's CPU per handshake, for 0 (one plain process), 1 and 2 workers. */
export const HANDSHAKE_FIGURES: ReadonlyArray<FigureDef & { cpu: FigureDef }> = [
  ['Solo', 'one process (no node:cluster)'],
  ['1', '1 node:cluster worker'],
  ['2', '2 node:cluster workers']
].map(([suffix, label]) => ({
  id: `handshakes${suffix}` as FigureId,
  label: () => label,
  higherIsBetter: true,
  format: rate,
  cpu: { id: `hsCpu${suffix}` as FigureId, label: () => `${label}, CPU`, higherIsBetter: false, format: fixed(2) }
}))

/** One figure value of one block of one round. */
export interface FigureRecord extends FigureValue {
  round: number
  block: BlockId
}

interface Stat {
  mean: number
  min: number
  max: number
  n: number
}

function stat (values: number[]): Stat | undefined {
  const finite = values.filter(Number.isFinite)
  if (finite.length === 0) return undefined
  return { mean: finite.reduce((a, b) => a + b, 0) / finite.length, min: Math.min(...finite), max: Math.max(...finite), n: finite.length }
}

function statOf (records: readonly FigureRecord[], block: BlockId, figure: FigureId): Stat | undefined {
  return stat(records.filter((r) => r.block === block && r.figure === figure).map((r) => r.value))
}

function cell (figure: FigureDef, value: Stat | undefined): string {
  if (value === undefined) return '–'
  if (value.n === 1 || figure.format(value.min) === figure.format(value.max)) return figure.format(value.mean)
  return `${figure.format(value.mean)} (${figure.format(value.min)}–${figure.format(value.max)})`
}

/** How far the gateway is ahead: above 1 it is better, whichever way the figure runs. */
function advantage (figure: FigureDef, gateway: Stat | undefined, socketio: Stat | undefined): string {
  if (gateway === undefined || socketio === undefined || gateway.mean === 0 || socketio.mean === 0) return '–'
  return `×${(figure.higherIsBetter ? gateway.mean / socketio.mean : socketio.mean / gateway.mean).toFixed(2)}`
}

function loadCell (loads: Load[]): string {
  const range = (values: number[]): string => {
    const [min, max] = [Math.min(...values), Math.max(...values)]
    return min.toFixed(2) === max.toFixed(2) ? min.toFixed(2) : `${min.toFixed(2)}–${max.toFixed(2)}`
  }
  return `${range(loads.map((l) => l.loadAverage))} | ${range(loads.map((l) => l.otherCores))}`
}

export interface ClusterResults {
  title: string
  machine: MachineInfo
  rounds: number
  sizes: Sizes
  /** How the sizes were chosen (e.g. lowered to fit the open-files limit). */
  sizeNote?: string
  records: readonly FigureRecord[]
  problems: readonly string[]
  meta: RunMeta
}

/** The markdown report and the JSON document (summary plus every value with its load). */
export function renderClusterResults (input: ClusterResults): { markdown: string, json: string } {
  const { records, sizes } = input
  const peers = [
    '| figure | gateway | Socket.IO 4 + redis-adapter | gateway ahead by |',
    '|---|---|---|---|',
    ...PEER_FIGURES.map((figure) => {
      const gateway = statOf(records, 'gateway', figure.id)
      const socketio = statOf(records, 'socketio', figure.id)
      return `| ${figure.label(sizes)} | ${cell(figure, gateway)} | ${cell(figure, socketio)} | ${advantage(figure, gateway, socketio)} |`
    })
  ]
  const one = statOf(records, 'handshakes', 'handshakes1')
  const handshakes = [
    '| gateway, registry on Redis | handshakes/s (16 open→close loops) | ÷ 1 worker | CPU ms per handshake (primary, workers, Redis) |',
    '|---|---|---|---|',
    ...HANDSHAKE_FIGURES.map((figure) => {
      const value = statOf(records, 'handshakes', figure.id)
      const ratio = value === undefined || one === undefined ? '–' : `×${(value.mean / one.mean).toFixed(2)}`
      return `| ${figure.label(sizes)} | ${cell(figure, value)} | ${ratio} | ${cell(figure.cpu, statOf(records, 'handshakes', figure.cpu.id))} |`
    })
  ]
  const blocks = [...new Set(records.map((r) => `${r.round}\t${r.block}`))].map((key) => key.split('\t'))
  const load = [
    '| round | block | 1-min load average at start | other processes, cores |',
    '|---|---|---|---|',
    ...blocks.map(([round, block]) => `| ${Number(round) + 1} | ${block} | ${loadCell(records.filter((r) => String(r.round) === round && r.block === block).map((r) => r.load))} |`)
  ]
  const markdown = [
    input.title,
    '',
    machineMarkdown(input.machine),
    `- ${input.rounds} round(s), fresh processes per block, peer order alternating; ${count(sizes.connections)} connections ` +
      `over 2 instances, ${sizes.broadcasts} broadcasts, ${sizes.sends} sends per latency figure (×4 at 16 at once), ${sizes.thinkMs} ms apart` +
      (input.sizeNote === undefined ? '' : ` (${input.sizeNote})`),
    '',
    'Mean over rounds (min–max). "gateway ahead by": Socket.IO ÷ gateway for times, gateway ÷ Socket.IO for rates.',
    '',
    peers.join('\n'),
    '',
    handshakes.join('\n'),
    '',
    load.join('\n'),
    '',
    input.problems.length > 0 ? `Problems:\n${input.problems.map((line) => `- ${line}`).join('\n')}\n` : 'Problems: none (every message arrived once, in order; no call rejected).\n'
  ].join('\n')
  const summary = Object.fromEntries((['gateway', 'socketio', 'handshakes'] as const).map((block) => [block, Object.fromEntries(
    [...PEER_FIGURES, ...HANDSHAKE_FIGURES, ...HANDSHAKE_FIGURES.map((figure) => figure.cpu)].flatMap((figure) => {
      const value = statOf(records, block, figure.id)
      return value === undefined ? [] : [[figure.id, value]]
    }))]))
  const json = { ...input.meta, machine: input.machine, sizes, sizeNote: input.sizeNote, summary, records, problems: input.problems }
  return { markdown, json: `${JSON.stringify(json, null, 2)}\n` }
}
