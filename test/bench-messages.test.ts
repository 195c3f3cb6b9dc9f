import { execFile } from 'node:child_process'
import { mkdir, mkdtemp, readdir, rm } from 'node:fs/promises'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { runBench } from './helpers'

// Message mode's bench, smoke run: built into a directory of its own (the relay bench rebuilds
// dist/ meanwhile), every peer answers, every answer matches its request (else it exits 1), and it
// reports. Speed is not asserted; the figures belong to `npm run bench:messages`.

t.test('npm run bench:messages -- --quick runs message mode against its peers and reports', { timeout: 240_000 }, async (t) => {
  // Inside the repository (bench/results is git-ignored), where the build finds node_modules.
  const results = join(__dirname, '..', 'bench', 'results')
  await mkdir(results, { recursive: true })
  const dir = await mkdtemp(join(results, 'smoke-messages-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  const tsc = join(__dirname, '..', 'node_modules', 'typescript', 'bin', 'tsc')
  await promisify(execFile)(process.execPath, [tsc, '-p', 'tsconfig.build.json', '--outDir', join(dir, 'dist')], { cwd: join(__dirname, '..') })
  const { code, stdout } = await runBench(t, ['bench/messages.ts', '--quick', '--connections', '10', '--dist', join(dir, 'dist', 'index.js'), '--out', dir])
  t.equal(code, 0, 'the run exits 0: every peer answered and every answer matched its request')
  for (const peer of ['messages-http', 'handwritten-http', 'messages-ws', 'relay']) t.match(stdout, `| ${peer} |`)
  t.ok((await readdir(dir)).some((file) => /^messages-.*\.json$/.test(file)), 'the JSON results are written')
})
