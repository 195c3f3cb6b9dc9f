import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm, symlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'

// The passthrough engine relies on ws's private state (lib/relay/passthrough/ws-internals.ts),
// verified against the ws version package-lock.json pins. This runs the relay suite once more
// against the newest ws 8.x, which users get from `ws: ^8`, so that a ws release that changes
// those internals fails here instead of quietly sending every connection to the ws engine. While
// the pinned ws is the newest, the rest of this run covers it, and only the internals' own tests
// run here (which keeps the way the newest ws is brought in tested too).

const root = join(__dirname, '..')
/** The relay suite: both engines' behaviour, the frame-level tests and the ws internals. */
const SUITE = ['relay', 'frame-relay', 'ping-flood', 'limits', 'ws-internals']
const PINNED = (require('ws/package.json') as { version: string }).version

/** Runs a command to its end; resolves with its stdout, or rejects with its exit code and output. */
async function run (command: string, args: string[], options: { cwd: string, env?: NodeJS.ProcessEnv }): Promise<string> {
  const child = spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] })
  let output = ''
  child.stdout.on('data', (chunk: Buffer) => { output += chunk.toString() })
  child.stderr.on('data', (chunk: Buffer) => { output += chunk.toString() })
  const [code] = await once(child, 'close') as [number]
  if (code !== 0) throw new Error(`${command} ${args.join(' ')} exited ${code}:\n${output.slice(-4000)}`)
  return output
}

t.test('the relay suite passes with the newest ws 8.x', { timeout: 600_000 }, async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'ws-gateway-ws-latest-'))
  t.teardown(async () => await rm(dir, { recursive: true, force: true }))
  // npm resolves `ws@8` to the newest 8.x on the registry (its tarball may come from npm's cache).
  const [{ version, filename }] = JSON.parse(await run('npm', ['pack', 'ws@8', '--json', '--pack-destination', dir], { cwd: dir })) as Array<{ version: string, filename: string }>
  await run('tar', ['-xzf', join(dir, filename), '-C', dir], { cwd: dir })
  const suite = version === PINNED ? ['ws-internals'] : SUITE
  t.comment(`ws ${version} (pinned: ${PINNED}): ${suite.join(', ')}`)
  // A tap project of its own, so that its results and process info do not mix with this run's.
  await writeFile(join(dir, '.taprc'), 'jobs: 1\ntimeout: 120\ndisable-coverage: true\n')
  await symlink(join(root, 'node_modules'), join(dir, 'node_modules'))
  const files = suite.map((name) => join(root, 'test', `${name}.test.ts`))
  const output = await run(join(root, 'node_modules/.bin/tap'), [join(root, 'test/fixtures/ws-version.ts'), ...files], {
    cwd: dir,
    env: {
      // Not this run's tap and coverage settings: the child is a tap run of its own.
      ...Object.fromEntries(Object.entries(process.env).filter(([name]) => !/^(TAP|_TAPJS|NODE_V8_COVERAGE|NODE_OPTIONS)/.test(name))),
      NODE_OPTIONS: `--require=${join(root, 'test/fixtures/use-ws.cjs')}`,
      WS_GATEWAY_WS_DIR: join(dir, 'package'),
      WS_GATEWAY_WS_VERSION: version,
      _TAPJS_PROCESSINFO_COVERAGE_: '0'
    }
  })
  t.match(output, /# \{ total: \d+, pass: \d+ \}/, 'every test passed')
  t.notMatch(output, /fail: \d+/)
})
