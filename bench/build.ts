/**
 * Building dist/ the way `npm run build` does, for the orchestrators that load the built plugin.
 */
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'

/** Runs `tsc -p tsconfig.build.json` in `root`, bounded in time; returns an error text or undefined. */
export function buildDist (root: string): string | undefined {
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc')
  const result = spawnSync(process.execPath, [tsc, '-p', 'tsconfig.build.json'], {
    cwd: root, encoding: 'utf8', timeout: 180_000
  })
  if (result.status === 0) return undefined
  const output = `${result.stdout ?? ''}${result.stderr ?? ''}`.trim().split('\n').slice(0, 10).join('\n  ')
  return `tsc -p tsconfig.build.json failed (${result.status ?? result.signal ?? result.error?.message ?? '?'}):\n  ${output}`
}
