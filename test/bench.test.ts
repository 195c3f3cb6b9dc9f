import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import type { TestLike } from './helpers'

// The benchmarks' own smoke runs: every peer they start answers, every echo checks out (length and
// text/binary flag; a wrong one makes the run exit 1), and they report. Speed is not asserted
// here; the figures belong to `npm run bench`, `bench:ping-flood` and `bench:remask`.

/** Runs a bench script to its end: its exit code and stdout. */
async function bench (t: TestLike, args: string[]): Promise<{ code: number, stdout: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', ...args], {
    // Coverage of the children would be collected under another compiler and mislabel lines.
    env: { ...process.env, _TAPJS_PROCESSINFO_COVERAGE_: '0' },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  t.teardown(() => { if (child.exitCode === null) child.kill() })
  let stdout = ''
  child.stdout.on('data', (chunk: Buffer) => { stdout += chunk.toString() })
  child.stderr.resume()
  const [code] = await once(child, 'exit') as [number]
  return { code, stdout }
}

t.test('npm run bench -- --quick runs the gateway against its peers and reports', { timeout: 240_000 }, async (t) => {
  const out = await mkdtemp(join(tmpdir(), 'ws-gateway-bench-'))
  t.teardown(async () => await rm(out, { recursive: true, force: true }))
  const { code, stdout } = await bench(t, ['bench/run.ts', '--quick', '--peers', 'A,gateway,minimal', '--out', out])
  t.equal(code, 0, 'the run exits 0: every peer answered and every echo was right')
  t.match(stdout, '| msgs/s 64 B text')
  t.match(stdout, 'gateway (this plugin)')
  const report = JSON.parse(await readFile(join(out, 'latest.json'), 'utf8')) as Record<string, unknown>
  t.type(report, 'object')
})

t.test('npm run bench:ping-flood -- --quick measures a victim under each flood', { timeout: 120_000 }, async (t) => {
  const { code, stdout } = await bench(t, ['bench/ping-flood.ts', '--quick', '--engines', 'passthrough'])
  t.equal(code, 0, 'every echo of the victim was right')
  const results = JSON.parse(stdout.slice(stdout.lastIndexOf('\n[') + 1)) as Array<{ scenario: string, echoes: number, floodConnections: number }>
  t.equal(results.length, 4)
  t.ok(results.every((r) => r.echoes > 0), 'the victim is answered in every scenario')
  t.ok(results.slice(1).every((r) => r.floodConnections >= 2), 'every flooder connected')
})

t.test('npm run bench:remask times re-masking with and without bufferutil', { timeout: 60_000 }, async (t) => {
  const { code, stdout } = await bench(t, ['bench/remask.ts', '--ms', '20'])
  t.equal(code, 0)
  t.match(stdout, /\| 64 KiB \| \d+ \| \d+ \|/)
})
