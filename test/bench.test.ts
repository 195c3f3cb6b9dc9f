import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { runBench } from './helpers'

// The benchmark's own smoke run: every peer it starts answers, every echo checks out (length and
// text/binary flag; a wrong one makes the run exit 1), both modes run (isolated: fresh processes
// per step; long-lived: one process per peer for all steps), and it writes its report with the
// issue's targets per mode. Speed is not asserted here; the figures belong to `npm run bench`.

interface Report {
  modes: Record<string, { summary: Record<string, Record<string, { mean: number }>>, targets: Array<{ label: string }> }>
  steps: Array<{ mode: string, peer: string, measurement: { step: string, relayGc?: { markCompacts: number } } }>
}

t.test('npm run bench -- --quick runs the gateway against its peers in both modes and reports', { timeout: 300_000 }, async (t) => {
  const out = await mkdtemp(join(tmpdir(), 'ws-gateway-bench-'))
  t.teardown(async () => await rm(out, { recursive: true, force: true }))
  const { code, stdout } = await runBench(t, ['bench/run.ts', '--quick', '--peers', 'A,gateway,minimal', '--out', out])
  t.equal(code, 0, 'the run exits 0: every peer answered and every echo was right')
  t.match(stdout, '## Mode isolated')
  t.match(stdout, '## Mode long-lived')
  t.match(stdout, '| msgs/s 64 B text')
  t.match(stdout, 'gateway (this plugin)')
  t.match(stdout, '| msgs/s 64 KiB ≥ ×1.3 the minimal relay | ×')
  const report = JSON.parse(await readFile(join(out, 'latest.json'), 'utf8')) as Report
  t.same(Object.keys(report.modes), ['isolated', 'long-lived'], 'the JSON has both modes')
  for (const [mode, { summary, targets }] of Object.entries(report.modes)) {
    for (const peer of ['A', 'gateway', 'minimal']) {
      t.ok(summary[peer]?.tp64k?.mean !== undefined && summary[peer].tp64k.mean > 0, `${mode}: ${peer} has a 64 KiB figure`)
    }
    t.equal(targets.length, 9, `${mode}: every §2 target is evaluated`)
  }
  const gcCounted = report.steps.filter((record) => record.peer === 'gateway' && record.measurement.step === 'tp64k')
  t.equal(gcCounted.length, 2, 'one 64 KiB step of the gateway per mode')
  for (const record of gcCounted) t.type(record.measurement.relayGc?.markCompacts, 'number', `${record.mode}: the relay's collections were counted`)
})

t.test('npm run bench:cores, quick: the gateway on 2 node:cluster workers answers on one port', { timeout: 120_000 }, async (t) => {
  const out = await mkdtemp(join(tmpdir(), 'ws-gateway-bench-cores-'))
  t.teardown(async () => await rm(out, { recursive: true, force: true }))
  const { code, stdout } = await runBench(t, ['bench/run.ts', '--quick', '--no-build', '--modes', 'long-lived', '--peers', 'gateway-2w', '--steps', 'handshakes,tp64', '--out', out])
  t.equal(code, 0, 'every handshake and echo through the workers was right')
  t.match(stdout, 'gateway, 2 cluster workers')
  t.notMatch(stdout, '## Mode isolated', 'only the mode asked for ran')
  const report = JSON.parse(await readFile(join(out, 'latest.json'), 'utf8')) as Report
  const summary = report.modes['long-lived']?.summary['gateway-2w']
  t.ok((summary?.handshakes?.mean ?? 0) > 0, 'handshakes were counted')
  t.ok((summary?.tp64?.mean ?? 0) > 0, 'round trips were counted')
})
