/**
 * Issue 16 §2's targets, each a ratio of the gateway's mean to a peer's mean from the same run and
 * mode, and the table the README's Performance section takes them from.
 */
import type { PeerId } from './peer-registry.js'
import type { FigureId, Summary } from './report.js'

export interface TargetDef {
  label: string
  figure: FigureId
  /** The peer the gateway is divided by. */
  reference: PeerId
  /** Met when the ratio is at least (`min`) or at most (`max`) the bound. */
  direction: 'min' | 'max'
  bound: number
}

export const TARGETS: readonly TargetDef[] = [
  { label: 'msgs/s 64 B ≥ ×1.0 nginx', figure: 'tp64', reference: 'nginx', direction: 'min', bound: 1.0 },
  { label: 'msgs/s 1 KiB ≥ ×1.0 nginx', figure: 'tp1k', reference: 'nginx', direction: 'min', bound: 1.0 },
  { label: 'msgs/s 64 KiB ≥ ×1.3 the minimal relay', figure: 'tp64k', reference: 'minimal', direction: 'min', bound: 1.3 },
  { label: 'msgs/s 64 KiB ≥ ×1.0 nginx', figure: 'tp64k', reference: 'nginx', direction: 'min', bound: 1.0 },
  { label: 'p99 at 64 KiB, low load ≤ ×1.5 direct', figure: 'lat64kp99', reference: 'A', direction: 'max', bound: 1.5 },
  { label: 'relay CPU per 64 B round trip ≤ ×1.1 nginx', figure: 'cpu64', reference: 'nginx', direction: 'max', bound: 1.1 },
  { label: 'handshakes/s ≥ ×1.2 the minimal relay', figure: 'handshakes', reference: 'minimal', direction: 'min', bound: 1.2 },
  { label: 'handshakes/s ≥ ×0.8 nginx', figure: 'handshakes', reference: 'nginx', direction: 'min', bound: 0.8 },
  { label: 'RSS per idle proxied connection ≤ nginx', figure: 'idleKiB', reference: 'nginx', direction: 'max', bound: 1.0 }
]

export interface TargetResult {
  label: string
  /** Gateway mean ÷ reference mean, or undefined when either was not measured. */
  ratio: number | undefined
  met: boolean | undefined
}

/** Every target against one mode's summary. */
export function evaluateTargets (summary: Summary): TargetResult[] {
  return TARGETS.map((target) => {
    const gateway = summary.gateway?.[target.figure]
    const reference = summary[target.reference]?.[target.figure]
    if (gateway === undefined || reference === undefined || reference.mean === 0) return { label: target.label, ratio: undefined, met: undefined }
    const ratio = gateway.mean / reference.mean
    return { label: target.label, ratio, met: target.direction === 'min' ? ratio >= target.bound : ratio <= target.bound }
  })
}

/** One row per target, two columns (ratio, met) per mode. */
export function targetsMarkdown (byMode: ReadonlyArray<{ mode: string, results: readonly TargetResult[] }>): string {
  const lines = [
    `| issue 16 §2 target (gateway ÷ peer, same run) | ${byMode.map(({ mode }) => `${mode} | met`).join(' | ')} |`,
    `|---|${byMode.map(() => '---|---').join('|')}|`
  ]
  TARGETS.forEach((target, index) => {
    const cells = byMode.map(({ results }) => {
      const result = results[index]
      if (result?.ratio === undefined) return '– | not measured'
      return `×${result.ratio.toFixed(2)} | ${result.met === true ? 'yes' : 'no'}`
    })
    lines.push(`| ${target.label} | ${cells.join(' | ')} |`)
  })
  return `${lines.join('\n')}\n`
}
