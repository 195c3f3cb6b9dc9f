/**
 * Turn per-round measurements into per-peer figures (mean, min, max over rounds), ratios to A and
 * to the minimal relay, and the markdown written to stdout and bench/results/.
 */
import { machineMarkdown } from './machine.js'
import type { MachineInfo } from './machine.js'
import type { RunMeta } from './orchestrator.js'
import type { PeerId } from './peer-registry.js'
import type { ModeDef } from './modes.js'
import type { BlockRecord, StepId, StepMeasurement, StepRecord, Timing } from './steps.js'
import { evaluateTargets, targetsMarkdown } from './targets.js'

export type FigureId =
  | 'tp64' | 'tp1k' | 'tp64k' | 'cpu64' | 'cpu1k' | 'cpu64k' | 'gc64k'
  | 'lat64p50' | 'lat64p99' | 'lat64kp50' | 'lat64kp99' | 'handshakes' | 'cpuHandshake' | 'idleKiB'

interface FigureDef {
  id: FigureId
  label: string
  step: StepId
  value: (m: StepMeasurement) => number | undefined
  format: (value: number) => string
}

const rate = (value: number): string => value >= 10_000
  ? `${(value / 1000).toFixed(1)}k`
  : Math.round(value).toLocaleString('en-US')
const fixed = (digits: number) => (value: number): string => value.toFixed(digits)

export const FIGURES: readonly FigureDef[] = [
  { id: 'tp64', label: 'msgs/s 64 B text (50 conns × 8 in flight)', step: 'tp64', value: (m) => m.rate, format: rate },
  { id: 'tp1k', label: 'msgs/s 1 KiB text', step: 'tp1k', value: (m) => m.rate, format: rate },
  { id: 'tp64k', label: 'msgs/s 64 KiB binary', step: 'tp64k', value: (m) => m.rate, format: rate },
  { id: 'cpu64', label: 'relay CPU µs per round trip, 64 B', step: 'tp64', value: (m) => m.relayUsPerRoundTrip, format: fixed(1) },
  { id: 'cpu1k', label: 'relay CPU µs per round trip, 1 KiB', step: 'tp1k', value: (m) => m.relayUsPerRoundTrip, format: fixed(1) },
  { id: 'cpu64k', label: 'relay CPU µs per round trip, 64 KiB', step: 'tp64k', value: (m) => m.relayUsPerRoundTrip, format: fixed(0) },
  {
    id: 'gc64k',
    label: 'relay full GCs (mark-compact) per s, 64 KiB',
    step: 'tp64k',
    value: (m) => m.relayGc === undefined ? undefined : m.relayGc.markCompacts / m.seconds,
    format: fixed(1)
  },
  { id: 'lat64p50', label: 'low-load p50 ms, 64 B', step: 'lat64', value: (m) => m.p50Ms, format: fixed(2) },
  { id: 'lat64p99', label: 'low-load p99 ms, 64 B', step: 'lat64', value: (m) => m.p99Ms, format: fixed(2) },
  { id: 'lat64kp50', label: 'low-load p50 ms, 64 KiB', step: 'lat64k', value: (m) => m.p50Ms, format: fixed(2) },
  { id: 'lat64kp99', label: 'low-load p99 ms, 64 KiB', step: 'lat64k', value: (m) => m.p99Ms, format: fixed(2) },
  { id: 'handshakes', label: 'handshakes/s (16 open→close loops)', step: 'handshakes', value: (m) => m.rate, format: rate },
  { id: 'cpuHandshake', label: 'relay CPU µs per handshake', step: 'handshakes', value: (m) => m.relayUsPerRoundTrip, format: fixed(0) },
  { id: 'idleKiB', label: 'KiB RSS per idle proxied connection', step: 'idle', value: (m) => m.idle?.kiBPerConnection, format: fixed(1) }
]

export interface Stat {
  mean: number
  min: number
  max: number
  /** Rounds the mean is taken over. */
  n: number
  /** Rounds left out because other processes disturbed them while clean rounds exist. */
  dropped: number
  /** Every round was disturbed, so the mean is taken over disturbed rounds. */
  disturbedOnly: boolean
}

export type Summary = Partial<Record<PeerId, Partial<Record<FigureId, Stat>>>>

export interface PeerColumn {
  id: PeerId
  label: string
}

interface Value {
  value: number
  disturbed: boolean
}

function stat (values: Value[]): Stat | undefined {
  const finite = values.filter((entry) => Number.isFinite(entry.value))
  const clean = finite.filter((entry) => !entry.disturbed)
  const used = (clean.length > 0 ? clean : finite).map((entry) => entry.value)
  if (used.length === 0) return undefined
  return {
    mean: used.reduce((sum, value) => sum + value, 0) / used.length,
    min: Math.min(...used),
    max: Math.max(...used),
    n: used.length,
    dropped: clean.length > 0 ? finite.length - clean.length : 0,
    disturbedOnly: clean.length === 0
  }
}

/**
 * Means over rounds of every figure, per peer. Rounds that stayed disturbed after their repeats
 * are left out when the peer has clean rounds of that figure; a figure with no value is left out.
 */
export function summarise (records: readonly StepRecord[]): Summary {
  const summary: Summary = {}
  for (const figure of FIGURES) {
    const byPeer = new Map<PeerId, Value[]>()
    for (const { peer, measurement, disturbed } of records) {
      if (measurement.step !== figure.step) continue
      const value = figure.value(measurement)
      if (value === undefined) continue
      byPeer.set(peer, [...(byPeer.get(peer) ?? []), { value, disturbed }])
    }
    for (const [peer, values] of byPeer) {
      const result = stat(values)
      if (result !== undefined) (summary[peer] ??= {})[figure.id] = result
    }
  }
  return summary
}

function cell (figure: FigureDef, value: Stat | undefined): string {
  if (value === undefined) return '–'
  const marks = `${value.dropped > 0 ? ` n=${value.n}` : ''}${value.disturbedOnly ? ' ⚠' : ''}`
  if (value.n === 1 || figure.format(value.min) === figure.format(value.max)) return `${figure.format(value.mean)}${marks}`
  return `${figure.format(value.mean)} (${figure.format(value.min)}–${figure.format(value.max)})${marks}`
}

function ratio (value: Stat | undefined, reference: Stat | undefined): string {
  if (value === undefined || reference === undefined || reference.mean === 0) return '–'
  return `×${(value.mean / reference.mean).toFixed(2)}`
}

/** Figures table (mean over rounds, with min–max) and ratio table (to A and to the minimal relay). */
export function markdownTables (summary: Summary, peers: readonly PeerColumn[]): string {
  const header = (first: string, columns: readonly PeerColumn[]): string[] => [
    `| ${first} | ${columns.map((peer) => peer.label).join(' | ')} |`,
    `|---|${columns.map(() => '---').join('|')}|`
  ]
  const figures = [
    ...header('figure', peers),
    ...FIGURES.map((figure) =>
      `| ${figure.label} | ${peers.map((peer) => cell(figure, summary[peer.id]?.[figure.id])).join(' | ')} |`)
  ]
  const proxied = peers.filter((peer) => peer.id !== 'A')
  const ratios = [
    ...header('ratio of means: to A / to minimal relay', proxied),
    ...FIGURES.map((figure) => {
      const toA = (peer: PeerColumn): string => ratio(summary[peer.id]?.[figure.id], summary.A?.[figure.id])
      const toMinimal = (peer: PeerColumn): string => peer.id === 'minimal'
        ? '–'
        : ratio(summary[peer.id]?.[figure.id], summary.minimal?.[figure.id])
      return `| ${figure.label} | ${proxied.map((peer) => `${toA(peer)} / ${toMinimal(peer)}`).join(' | ')} |`
    })
  ]
  const legend = 'Mean over rounds (min–max). `n=2`: a round that stayed disturbed was left out; ' +
    '⚠: every round was disturbed (see Notes).'
  return `${figures.join('\n')}\n\n${legend}\n\n${ratios.join('\n')}\n`
}

export interface ResultsInput {
  title: string
  machine: MachineInfo
  rounds: number
  modes: readonly ModeDef[]
  timing: Timing
  peers: readonly PeerColumn[]
  skipped: ReadonlyArray<{ peer: PeerId, reason: string }>
  records: readonly StepRecord[]
  blocks: readonly BlockRecord[]
  notes: readonly string[]
  meta: RunMeta
}

/** The markdown report and the JSON document (per mode: summary and targets; plus every raw attempt kept). */
export function renderResults (input: ResultsInput): { markdown: string, json: string } {
  const { timing } = input
  const modes = input.modes.map((mode) => {
    const summary = summarise(input.records.filter((record) => record.mode === mode.id))
    return { mode, summary, targets: evaluateTargets(summary) }
  })
  const markdown = [
    input.title,
    '',
    machineMarkdown(input.machine),
    `- ${input.rounds} round(s) per mode, order alternating; ${timing.warmupMs} ms warm-up + ` +
      `${timing.measureMs} ms measured; ${timing.idleConnections} idle connections`,
    '',
    ...modes.flatMap(({ mode, summary }) => [`## Mode ${mode.label}`, '', markdownTables(summary, input.peers)]),
    '## Issue 16 §2 targets, per mode',
    '',
    targetsMarkdown(modes.map(({ mode, targets }) => ({ mode: mode.id, results: targets }))),
    input.skipped.length > 0
      ? `Skipped: ${input.skipped.map((s) => `${s.peer} (${s.reason.split('\n')[0] ?? ''})`).join('; ')}\n`
      : '',
    input.notes.length > 0
      ? `Notes:\n${input.notes.map((line) => `- ${line}`).join('\n')}\n`
      : 'Notes: no disturbed steps, no echo errors.\n'
  ].join('\n')
  const json = {
    ...input.meta,
    timing,
    machine: input.machine,
    skipped: input.skipped,
    figures: FIGURES.map((figure) => ({ id: figure.id, label: figure.label })),
    modes: Object.fromEntries(modes.map(({ mode, summary, targets }) => [mode.id, { label: mode.label, order: mode.order, summary, targets }])),
    blocks: input.blocks,
    steps: input.records,
    notes: input.notes
  }
  return { markdown, json: `${JSON.stringify(json, null, 2)}\n` }
}
