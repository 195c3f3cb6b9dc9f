import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { runBench } from './helpers'

// The benchmark's own smoke run: every peer it starts answers, every echo checks out (length and
// text/binary flag; a wrong one makes the run exit 1), and it writes its report. Speed is not
// asserted here; the figures belong to `npm run bench`.

t.test('npm run bench -- --quick runs the gateway against its peers and reports', { timeout: 240_000 }, async (t) => {
  const out = await mkdtemp(join(tmpdir(), 'ws-gateway-bench-'))
  t.teardown(async () => await rm(out, { recursive: true, force: true }))
  const { code, stdout } = await runBench(t, ['bench/run.ts', '--quick', '--peers', 'A,gateway,minimal', '--out', out])
  t.equal(code, 0, 'the run exits 0: every peer answered and every echo was right')
  t.match(stdout, '| msgs/s 64 B text')
  t.match(stdout, 'gateway (this plugin)')
  const report = JSON.parse(await readFile(join(out, 'latest.json'), 'utf8')) as Record<string, unknown>
  t.type(report, 'object')
})
