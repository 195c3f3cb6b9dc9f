/**
 * What a reader needs to judge the figures: cores, CPU model, Node, the versions of ws and the
 * relays, whether ws gets native masking from bufferutil, and nginx's version.
 */
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { cpus, loadavg, release, totalmem } from 'node:os'
import { join } from 'node:path'
import { CLOCK_TICKS } from './proc.js'
import { nginxVersion } from './peers/nginx.js'

export interface MachineInfo {
  cores: number
  cpuModel: string
  memoryGiB: number
  kernel: string
  node: string
  clockTicks: number
  loadAverageAtStart: number[]
  bufferutilNative: boolean
  versions: Record<string, string>
  nginx: string | null
}

function packageVersion (root: string, name: string): string {
  try {
    const text = readFileSync(join(root, 'node_modules', name, 'package.json'), 'utf8')
    return (JSON.parse(text) as { version?: string }).version ?? '?'
  } catch {
    return 'not installed'
  }
}

/** ws uses bufferutil when it loads; it is native unless it fell back to its JS version. */
function bufferutilIsNative (root: string): boolean {
  try {
    const require = createRequire(join(root, 'package.json'))
    const loaded = require('bufferutil') as { mask: unknown }
    const fallback = require('bufferutil/fallback') as { mask: unknown }
    return loaded.mask !== fallback.mask && process.env.WS_NO_BUFFER_UTIL === undefined
  } catch {
    return false
  }
}

/** The machine, and the versions of ws, the relays and `packages` (those of another bench). */
export function machineInfo (root: string, packages: readonly string[] = ['@fastify/http-proxy']): MachineInfo {
  const processors = cpus()
  const names = ['ws', 'bufferutil', 'fastify', '@fastify/websocket', '@fastify/jwt', 'tsx', ...packages]
  return {
    cores: processors.length,
    cpuModel: processors[0]?.model ?? 'unknown',
    memoryGiB: Math.round(totalmem() / 2 ** 30 * 10) / 10,
    kernel: release(),
    node: process.version,
    clockTicks: CLOCK_TICKS,
    loadAverageAtStart: loadavg().map((value) => Math.round(value * 100) / 100),
    bufferutilNative: bufferutilIsNative(root),
    versions: Object.fromEntries(names.map((name) => [name, packageVersion(root, name)])),
    nginx: nginxVersion() ?? null
  }
}

export function machineMarkdown (info: MachineInfo): string {
  return [
    `- ${info.cores} cores (${info.cpuModel}), ${info.memoryGiB} GiB, Linux ${info.kernel}`,
    `- Node ${info.node}; ${Object.entries(info.versions).map(([name, version]) => `${name} ${version}`).join(', ')}`,
    `- bufferutil native masking: ${info.bufferutilNative ? 'yes' : 'NO (JS fallback: 64 KiB figures of Node relays drop ×3–4)'}`,
    `- ${info.nginx ?? 'nginx not installed'}; load average at start ${info.loadAverageAtStart.join(' / ')}`
  ].join('\n')
}
