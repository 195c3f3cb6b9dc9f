import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { runBench } from './helpers'

// The cluster bench's smoke run on a tiny configuration: its own redis-server, two gateway
// instances and two Socket.IO instances each reach every one of 100 connections with every
// message once and in order (anything lost, duplicated or rejected makes the run exit 1), the
// handshake block runs on 1 and 2 workers, and the report has every figure. The gateway runs from
// lib/ through tsx (no build, so no race with the main bench's smoke run rebuilding dist/). Speed
// is not asserted; the figures belong to `npm run bench:cluster`.
t.test('npm run bench:cluster -- --quick compares the gateway with Socket.IO across instances and reports', { timeout: 180_000 }, async (t) => {
  const out = await mkdtemp(join(tmpdir(), 'ws-gateway-bench-cluster-'))
  t.teardown(async () => await rm(out, { recursive: true, force: true }))
  const { code, stdout } = await runBench(t, ['bench/cluster.ts', '--quick', '--connections', '100', '--sends', '20', '--dist', 'lib/index.ts', '--out', out])
  t.equal(code, 0, 'the run exits 0: every message arrived once, in order, and no call was rejected (else see the problems below)')
  t.match(stdout, '| send, API on A → client on B, one at a time: p50 ms |')
  t.match(stdout, '| 2 node:cluster workers |')
  const report = JSON.parse(await readFile(join(out, 'cluster-latest.json'), 'utf8')) as {
    summary: Record<string, Record<string, { mean: number }>>
    problems: string[]
  }
  t.same(report.problems, [])
  const figures = (block: string): string[] => Object.keys(report.summary[block] ?? {}).sort()
  const broadcast = ['burstCallsMs', 'burstCpuUs', 'burstLastMs', 'burstRate', 'burstWrites', 'oneCpuUs', 'oneLastMs', 'oneRate', 'oneWrites']
  const sends = ['localP50', 'localP99', 'send16P50', 'send16P99', 'sendP50', 'sendP99']
  t.same(figures('gateway'), [...broadcast, ...sends, 'restP50', 'restP99'].sort())
  t.same(figures('socketio'), [...broadcast, ...sends].sort(), 'Socket.IO has no REST surface')
  t.same(figures('handshakes'), ['handshakes1', 'handshakes2', 'handshakesSolo', 'hsCpu1', 'hsCpu2', 'hsCpuSolo'])
  for (const block of ['gateway', 'socketio', 'handshakes']) {
    for (const [figure, { mean }] of Object.entries(report.summary[block] ?? {})) {
      // CPU is read from /proc in clock ticks (10 ms): a tiny run may spend less than one.
      if (/Cpu/.test(figure)) t.ok(mean >= 0, `${block} ${figure} is a number`)
      else t.ok(mean > 0, `${block} ${figure} is a positive number`)
    }
  }
})
