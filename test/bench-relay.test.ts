import t from 'tap'
import { runBench } from './helpers'

// The smoke runs of the relay's own benchmarks, `npm run bench:ping-flood` and `bench:remask`
// (issue 12): they run to the end and report. Speed is not asserted here; the README has the figures.

t.test('npm run bench:ping-flood -- --quick measures a victim under each flood', { timeout: 120_000 }, async (t) => {
  const { code, stdout } = await runBench(t, ['bench/ping-flood.ts', '--quick', '--engines', 'passthrough'])
  t.equal(code, 0, 'every echo of the victim was right')
  const results = JSON.parse(stdout.slice(stdout.lastIndexOf('\n[') + 1)) as Array<{ scenario: string, echoes: number, floodConnections: number }>
  t.equal(results.length, 4)
  t.ok(results.every((r) => r.echoes > 0), 'the victim is answered in every scenario')
  t.ok(results.slice(1).every((r) => r.floodConnections >= 2), 'every flooder connected')
})

t.test('npm run bench:remask times re-masking with and without bufferutil', { timeout: 60_000 }, async (t) => {
  const { code, stdout } = await runBench(t, ['bench/remask.ts', '--ms', '20'])
  t.equal(code, 0)
  t.match(stdout, /\| 64 KiB \| \d+ \| \d+ \|/)
})
