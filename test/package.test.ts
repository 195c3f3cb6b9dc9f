import { execFile, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { once } from 'node:events'
import { cp, mkdtemp, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises'
import { builtinModules } from 'node:module'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { createInterface } from 'node:readline'
import { promisify } from 'node:util'
import t from 'tap'
import { createSigner } from 'fast-jwt'
import ts from 'typescript'
import WebSocket, { WebSocketServer } from 'ws'
import type { TestLike } from './helpers'

/*
 * The package as users get it: `npm pack` (its `prepare` build included), the tarball installed
 * into an empty app with only its declared dependencies and fastify, offline from npm's cache;
 * then `require` and `import`, the README tour compiled by tsc under every module setting of
 * test/fixtures/package/ (the type tests), and the compiled tour run against echo backends.
 * Nothing here runs lib/ in this process: the children run the installed copy.
 */

const ROOT = join(__dirname, '..')
const FIXTURES = join(ROOT, 'test', 'fixtures', 'package')
const TSC = join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc')
const PACKAGE = 'fastify-ws-gateway'
/** The tsconfig.<setting>.json files of the fixtures; each is strict with skipLibCheck off. */
const SETTINGS = ['nodenext', 'commonjs', 'bundler', 'preserve']
/** Not copied to the staging copy that is packed: installed, built, or the runs' by-products. */
const NOT_STAGED = new Set(['node_modules', '.git', 'dist', '.tap', 'coverage', '.scratch'])
/** Added to the module by fastify-plugin at run time (its name in camelCase); not part of the API. */
const PLUGIN_ALIAS = 'fastifyWsGateway'

interface Manifest {
  version: string
  dependencies?: Record<string, string>
  optionalDependencies?: Record<string, string>
  peerDependencies?: Record<string, string>
  peerDependenciesMeta?: Record<string, { optional?: boolean }>
  [key: string]: unknown
}

/**
 * The children's environment: no coverage (they run no lib/ file), and none of the per-run npm
 * variables of an `npm test` around this test (npm's own config, e.g. its cache, stays).
 */
function childEnv (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (!/^npm_/i.test(key) || (/^npm_config_/i.test(key) && !/^npm_config_local_prefix$/i.test(key))) env[key] = value
  }
  return { ...env, ...extra, _TAPJS_PROCESSINFO_COVERAGE_: '0' }
}

const execFileAsync = promisify(execFile)
async function run (file: string, args: string[], cwd: string): Promise<string> {
  try {
    return (await execFileAsync(file, args, { cwd, env: childEnv(), maxBuffer: 64 << 20 })).stdout
  } catch (err) {
    const { stdout, stderr } = err as { stdout?: string, stderr?: string }
    throw new Error(`${file} ${args.join(' ')} failed in ${cwd}:\n${stdout ?? ''}${stderr ?? ''}`)
  }
}

/**
 * The app's lockfile: the entries of this repository's package-lock.json that the package's
 * declared dependencies (and fastify, @types/node) need, found the way Node resolves them. With it
 * npm installs from its cache without asking the registry for anything (`npm ci` of this
 * repository cached exactly these tarballs).
 */
function appLockfile (lock: { packages: Record<string, Manifest> }, roots: Array<[string, boolean]>, registry: string): Record<string, Manifest> {
  const { packages } = lock
  const picked: Record<string, Manifest> = {}
  const resolve = (from: string, name: string): string | undefined => {
    for (let base = from; ; base = base.includes('/node_modules/') ? base.slice(0, base.lastIndexOf('/node_modules/')) : '') {
      const key = base === '' ? `node_modules/${name}` : `${base}/node_modules/${name}`
      if (packages[key] !== undefined) return key
      if (base === '') return undefined
    }
  }
  const want = (from: string, name: string, optional: boolean): void => {
    const key = resolve(from, name)
    if (key === undefined) {
      if (optional) return
      throw new Error(`${name}, needed by ${from === '' ? PACKAGE : from}, is not in package-lock.json: run npm install`)
    }
    if (picked[key] !== undefined) return
    const { dev, devOptional, peer, ...entry } = packages[key]
    // Where the tarball is, so npm needs no registry metadata (this lockfile, like the
    // repository's, is written without it); npm finds the tarball in its cache by integrity.
    entry.resolved ??= `${registry}${name}/-/${name.split('/').pop() as string}-${entry.version}.tgz`
    picked[key] = entry
    for (const dep of Object.keys(entry.dependencies ?? {})) want(key, dep, false)
    for (const dep of Object.keys(entry.optionalDependencies ?? {})) want(key, dep, true)
    for (const dep of Object.keys(entry.peerDependencies ?? {})) want(key, dep, entry.peerDependenciesMeta?.[dep]?.optional === true)
  }
  for (const [name, optional] of roots) want('', name, optional)
  return picked
}

/** Package names a built file loads: its imports, `require()`s and `import()` types (not its comments). */
function packagesLoadedBy (text: string): string[] {
  return ts.preProcessFile(text, true, true).importedFiles.map((file) => file.fileName)
    .filter((s) => !s.startsWith('.') && !s.startsWith('node:') && !builtinModules.includes(s))
    .map((s) => s.split('/').slice(0, s.startsWith('@') ? 2 : 1).join('/'))
}

async function filesUnder (dir: string): Promise<string[]> {
  return (await readdir(dir, { recursive: true })).map((file) => join(dir, file))
}

let app = ''
let installed = ''
let packedFiles: string[] = []
let manifest: Manifest

t.before(async () => {
  const work = await mkdtemp(join(tmpdir(), 'ws-gateway-package-'))
  t.teardown(async () => { await rm(work, { recursive: true, force: true }) })
  // Packed from a copy, so the build does not rewrite the dist/ other tests may be reading.
  const stage = join(work, 'stage')
  await cp(ROOT, stage, { recursive: true, filter: (src) => !NOT_STAGED.has(relative(ROOT, src)) && !relative(ROOT, src).startsWith('bench/results') })
  await symlink(join(ROOT, 'node_modules'), join(stage, 'node_modules'), 'dir')
  const [packed] = JSON.parse(await run('npm', ['pack', '--json', '--pack-destination', work], stage)) as Array<{ filename: string, integrity: string, files: Array<{ path: string }> }>
  packedFiles = packed.files.map((file) => file.path)
  manifest = JSON.parse(await readFile(join(stage, 'package.json'), 'utf8')) as Manifest

  app = join(work, 'app')
  const lock = JSON.parse(await readFile(join(ROOT, 'package-lock.json'), 'utf8')) as { packages: Record<string, Manifest> }
  const versionOf = (name: string): string => lock.packages[`node_modules/${name}`].version
  const tarball = `file:../${packed.filename}`
  const dependencies = { [PACKAGE]: tarball, fastify: `^${versionOf('fastify')}` }
  const devDependencies = { '@types/node': `^${versionOf('@types/node')}` }
  const roots: Array<[string, boolean]> = [
    ...Object.keys(manifest.dependencies ?? {}).map((name): [string, boolean] => [name, false]),
    ...Object.keys(manifest.optionalDependencies ?? {}).map((name): [string, boolean] => [name, true]),
    ['fastify', false], ['@types/node', false]
  ]
  const { dependencies: deps, optionalDependencies, peerDependencies, engines, license } = manifest
  const registry = (await run('npm', ['config', 'get', 'registry'], work)).trim().replace(/\/?$/, '/')
  const packages = {
    '': { name: 'app', dependencies, devDependencies },
    [`node_modules/${PACKAGE}`]: { version: manifest.version, resolved: tarball, integrity: packed.integrity, license, dependencies: deps, optionalDependencies, peerDependencies, engines },
    ...appLockfile(lock, roots, registry)
  }
  await cp(FIXTURES, app, { recursive: true })
  await writeFile(join(app, 'package.json'), JSON.stringify({ name: 'app', private: true, type: 'module', dependencies, devDependencies }, null, 2))
  await writeFile(join(app, 'package-lock.json'), JSON.stringify({ name: 'app', lockfileVersion: 3, requires: true, packages }, null, 2))
  await run('npm', ['install', '--offline', '--no-audit', '--no-fund'], app)
  installed = join(app, 'node_modules', PACKAGE)
})

t.test('the tarball holds the build, its types, README and LICENSE, and no sources', async (t) => {
  for (const file of ['LICENSE', 'README.md', 'package.json', 'types/index.d.ts', 'dist/index.js', 'dist/index.d.ts']) {
    t.ok(packedFiles.includes(file), `${file} is packed`)
  }
  t.same(packedFiles.filter((file) => !/^(dist|types)\//.test(file) && !['LICENSE', 'README.md', 'package.json'].includes(file)), [], 'nothing else')
  t.same(packedFiles.filter((file) => file.endsWith('.ts') && !file.endsWith('.d.ts')), [], 'no TypeScript sources')
  for (const file of (await filesUnder(join(installed, 'dist'))).filter((file) => file.endsWith('.js.map'))) {
    const map = JSON.parse(await readFile(file, 'utf8')) as { sources: string[], sourcesContent?: string[] }
    t.equal(map.sourcesContent?.length, map.sources.length, `${relative(installed, file)} carries its sources`)
  }
})

t.test('every package the installed dist/ and types load is declared', async (t) => {
  t.notOk(manifest.dependencies?.fastify, 'fastify is not a dependency')
  t.equal(manifest.peerDependencies?.fastify, '^5.0.0', 'fastify is a peer dependency, as fastify-plugin checks 5.x')
  const runtime = new Set([...Object.keys(manifest.dependencies ?? {}), ...Object.keys(manifest.optionalDependencies ?? {})])
  const types = new Set([...runtime, ...Object.keys(manifest.peerDependencies ?? {})])
  for (const file of await filesUnder(installed)) {
    const name = relative(installed, file)
    if (name.startsWith('node_modules')) continue
    const declared = file.endsWith('.d.ts') ? (pkg: string) => types.has(pkg) || types.has(`@types/${pkg}`) : file.endsWith('.js') ? (pkg: string) => runtime.has(pkg) : undefined
    if (declared === undefined) continue
    const missing = packagesLoadedBy(await readFile(file, 'utf8')).filter((pkg) => !declared(pkg))
    t.same(missing, [], `${name} loads only declared packages`)
  }
})

t.test('require() and import give the plugin, with what types/index.d.ts declares', async (t) => {
  const required = JSON.parse(await run(process.execPath, ['-e', `
    const gateway = require('${PACKAGE}')
    console.log(JSON.stringify({ type: typeof gateway, keys: Object.keys(gateway).sort(), same: gateway.default === gateway && gateway.wsGateway === gateway }))
  `], app)) as { type: string, keys: string[], same: boolean }
  t.equal(required.type, 'function', 'require() is the plugin')
  t.ok(required.same, 'require().default and require().wsGateway are the plugin')

  // The values and types declared for users: the same names as lib/index.ts exports, and the
  // values are on the module at run time.
  const program = ts.createProgram([join(installed, 'types', 'index.d.ts')], { module: ts.ModuleKind.NodeNext, noEmit: true, skipLibCheck: true })
  const checker = program.getTypeChecker()
  const exportsOf = (file: string): ts.Symbol[] => checker.getExportsOfModule(checker.getSymbolAtLocation(program.getSourceFile(file) as ts.SourceFile) as ts.Symbol)
  const declared = exportsOf(join(installed, 'types', 'index.d.ts'))
  const names = (symbols: ts.Symbol[]): string[] => symbols.map((symbol) => symbol.name).sort()
  t.same(names(declared), names(exportsOf(join(installed, 'dist', 'index.d.ts'))), 'types/index.d.ts declares every export of lib/index.ts')
  const resolved = (symbol: ts.Symbol): ts.Symbol => (symbol.flags & ts.SymbolFlags.Alias) !== 0 ? checker.getAliasedSymbol(symbol) : symbol
  const isValue = (symbol: ts.Symbol): boolean => (resolved(symbol).flags & ts.SymbolFlags.Value) !== 0
  const values = names(declared.filter(isValue))
  t.same(required.keys.filter((key) => key !== PLUGIN_ALIAS), values, 'the module has the values the types declare')

  const imported = JSON.parse(await run(process.execPath, ['--input-type=module', '-e', `
    import gateway, * as all from '${PACKAGE}'
    import { ${values.map((name) => name === 'default' ? 'default as defaultExport' : name).join(', ')} } from '${PACKAGE}'
    console.log(JSON.stringify({ type: typeof gateway, same: defaultExport === gateway && wsGateway === gateway, closeNormal: CloseCode.NORMAL, errors: typeof errors.InvalidOptionError }))
  `], app)) as Record<string, unknown>
  t.same(imported, { type: 'function', same: true, closeNormal: 1000, errors: 'function' }, 'import gives the plugin and every declared value by name')
})

t.test('the README tour and the type tests compile under every module setting', async (t) => {
  // Two at a time: the machine this runs on may have two cores.
  const results: Record<string, string> = {}
  const queue = [...SETTINGS]
  await Promise.all([0, 1].map(async () => {
    for (let setting = queue.shift(); setting !== undefined; setting = queue.shift()) {
      results[setting] = await run(process.execPath, [TSC, '-p', `tsconfig.${setting}.json`], app).then(() => '', (err: Error) => err.message)
    }
  }))
  for (const setting of SETTINGS) {
    const name = `tsc -p tsconfig.${setting}.json: no errors, every @ts-expect-error used`
    if (results[setting] === '') t.pass(name)
    else t.fail(`${name}\n${results[setting]}`)
  }
})

/** Two echo backends: text back as text, binary as binary; `closed` is the first close code one gets. */
async function echoBackends (t: TestLike): Promise<{ urls: Record<string, string>, closed: Promise<number>, apiKeys: Array<string | undefined> }> {
  let onClose = (code: number): void => { throw new Error(`closed with ${code} before anyone waited`) }
  const closed = new Promise<number>((resolve) => { onClose = resolve })
  const apiKeys: Array<string | undefined> = []
  const urls: Record<string, string> = {}
  for (const id of ['ABC', 'PQR']) {
    const server = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false })
    await once(server, 'listening')
    t.teardown(async () => { for (const ws of server.clients) ws.terminate(); server.close(); await once(server, 'close') })
    server.on('connection', (ws, request) => {
      apiKeys.push(request.headers['x-api-key'] as string | undefined)
      ws.on('message', (data, isBinary) => { ws.send(data, { binary: isBinary }) })
      ws.on('close', onClose)
    })
    urls[`BACKEND_${id}_URL`] = `ws://127.0.0.1:${(server.address() as { port: number }).port}`
  }
  return { urls, closed, apiKeys }
}

/** The status a refused upgrade gets. */
async function refusal (url: string, headers: Record<string, string>): Promise<number | undefined> {
  const ws = new WebSocket(url, { headers, perMessageDeflate: false })
  ws.on('error', () => {})
  const [request, response] = await once(ws, 'unexpected-response') as [{ destroy: () => void }, { statusCode?: number }]
  request.destroy()
  return response.statusCode
}

for (const [name, file] of [['ES module', 'out/tour.mjs'], ['CommonJS', 'out/tour.cjs']]) {
  t.test(`the compiled README tour runs (${name}): text, binary and close 1000 through the gateway`, async (t) => {
    const backends = await echoBackends(t)
    const secret = randomBytes(32).toString('hex')
    const child = spawn(process.execPath, [file], { cwd: app, env: childEnv({ ...backends.urls, JWT_SECRET: secret }), stdio: ['pipe', 'pipe', 'pipe'] })
    t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill() })
    let stderr = ''
    child.stderr.on('data', (chunk: Buffer) => { stderr += chunk.toString() })
    const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]()
    const first = await lines.next()
    if (first.done === true) {
      if (!child.stderr.readableEnded) await once(child.stderr, 'end')
      t.fail(`the gateway did not start; its stderr:\n${stderr}`)
      return
    }
    const { address } = JSON.parse(first.value as string) as { address: string }
    const url = `${address.replace(/^http/, 'ws')}/ws`

    const health = await fetch(`${address}/health`)
    t.same([health.status, await health.json()], [200, { ok: true }], 'the REST route answers')
    const token = createSigner({ key: secret, expiresIn: 60_000 })({ sub: 'user-1', backends: ['Backend_ABC'] })
    t.equal(await refusal(url, { authorization: `Bearer ${createSigner({ key: 'not-the-secret', expiresIn: 60_000 })({ sub: 'x' })}`, id: 'Backend_ABC' }), 401, 'a token signed with another key: 401')
    t.equal(await refusal(url, { authorization: `Bearer ${token}`, id: 'Backend_PQR' }), 403, 'a backend the token does not list: 403 from authorize()')

    const ws = new WebSocket(url, { headers: { authorization: `Bearer ${token}`, id: 'Backend_ABC' }, perMessageDeflate: false })
    await once(ws, 'open')
    const replies: Array<[string, boolean]> = []
    ws.on('message', (data: Buffer, isBinary) => { replies.push([isBinary ? data.toString('hex') : data.toString(), isBinary]) })
    ws.send('hello')
    ws.send(Buffer.from([0, 1, 2, 255]))
    while (replies.length < 2) await once(ws, 'message')
    t.same(replies, [['hello', false], ['000102ff', true]], 'text comes back as text, binary as binary, in order')
    ws.close(1000, 'bye')
    const [code] = await once(ws, 'close') as [number]
    t.equal(code, 1000, 'the client gets 1000 back')
    t.equal(await backends.closed, 1000, 'the backend got 1000')
    t.same(backends.apiKeys, [undefined], 'Backend_ABC has no x-api-key (only Backend_PQR is configured with one)')

    child.stdin.end()
    const last = await lines.next()
    const { stats } = JSON.parse(last.value as string) as { stats: { total: number, fromClient: { frames: number }, rejected: Record<string, number> } }
    t.equal(stats.total, 1, 'app.wsGateway.stats() counted the connection')
    t.equal(stats.fromClient.frames, 2, 'two frames from the client')
    t.same(Object.keys(stats.rejected).sort(), ['FST_WS_GATEWAY_FORBIDDEN', 'FST_WS_GATEWAY_INVALID_TOKEN'])
    const [exitCode] = child.exitCode === null ? await once(child, 'exit') as [number] : [child.exitCode]
    t.equal(exitCode, 0, `app.close() let the process end by itself${stderr === '' ? '' : `; its stderr:\n${stderr}`}`)
  })
}
