import { spawn } from 'node:child_process'
import { once } from 'node:events'
import t from 'tap'

t.test('npm run start:cluster: workers share a port, the REST surface reaches clients on any worker, exit 0', async (t) => {
  const child = spawn(process.execPath, ['--import', 'tsx', 'example/cluster.ts'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, _TAPJS_PROCESSINFO_COVERAGE_: '0', WORKERS: '2' }
  })
  t.teardown(() => { if (child.exitCode === null) child.kill('SIGKILL') })
  let out = ''
  let err = ''
  child.stdout.on('data', (chunk) => { out += String(chunk) })
  child.stderr.on('data', (chunk) => { err += String(chunk) })
  const [code] = await once(child, 'exit') as [number]
  t.equal(code, 0, err)
  t.match(out, /on 2 workers \(node:cluster\)/)
  t.match(out, /alice +connected to worker-\d as worker-\d\./)
  t.match(out, /POST \/@connections\/:id reached all 4 clients across workers, each once/)
  t.match(out, /GET \/@connections\?sub=alice lists 2 connections/)
  t.match(out, /closed carol's client: 4000 bye/)
  t.match(out, /\ndone\n$/)
})
