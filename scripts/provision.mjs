// `npm test`'s pretest: the system packages the tests need, from Debian's archive and nowhere else
// (no browser or Redis build is ever downloaded): Chromium for the real-browser test, redis-server
// for the cluster tests. When one is missing it is installed with apt-get if this runs as root,
// without leaving a Redis running on port 6379; otherwise this stops with the command to run.
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { fileURLToPath } from 'node:url'

/** Debian package → the file the tests use. */
const NEEDED = { chromium: '/usr/bin/chromium', 'redis-server': '/usr/bin/redis-server' }
const APT_GET = '/usr/bin/apt-get'
/** Asked by invoke-rc.d and deb-systemd-invoke before a package's scripts start a service. */
const POLICY_RC_D = '/usr/sbin/policy-rc.d'
const MARKER = '# written by fastify-ws-gateway scripts/provision.mjs'
const REDIS_PIDFILE = '/run/redis/redis-server.pid'
/** One provision at a time on a machine (say two checkouts running npm test): they share policy-rc.d. */
const LOCK = `${existsSync('/run/lock') ? '/run/lock' : '/tmp'}/fastify-ws-gateway-provision.pid`

function log (line) { console.log(`provision: ${line}`) }

const missingNow = () => Object.keys(NEEDED).filter((pkg) => !existsSync(NEEDED[pkg]))

function alive (pid) {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return err.code === 'EPERM'
  }
}

function run (file, args) {
  log(`${file} ${args.join(' ')}`)
  const result = spawnSync(file, args, { stdio: 'inherit', env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } })
  if (result.status !== 0) throw new Error(`${file} ${args.join(' ')} failed (${result.error?.message ?? `exit ${result.status ?? result.signal}`})`)
}

/** The pid in Redis's pidfile, if that process is alive. */
function runningRedis () {
  try {
    const pid = Number(readFileSync(REDIS_PIDFILE, 'utf8').trim())
    return pid > 0 && alive(pid) ? pid : undefined
  } catch {
    return undefined
  }
}

async function withLock (fn) {
  for (let waited = false; ;) {
    try {
      writeFileSync(LOCK, String(process.pid), { flag: 'wx' })
      break
    } catch (err) {
      if (err.code !== 'EEXIST') throw err
      const holder = Number(readFileSync(LOCK, 'utf8'))
      if (!alive(holder)) { rmSync(LOCK, { force: true }); continue }
      if (!waited) log(`waiting for another provision (pid ${holder}) to finish`)
      waited = true
      await sleep(1000)
    }
  }
  try {
    return await fn()
  } finally {
    rmSync(LOCK, { force: true })
  }
}

/**
 * apt-get install with a policy-rc.d that refuses every service start (the machine's own one is
 * put back after), then stops a Redis that started all the same, by its pidfile.
 */
async function install (packages) {
  const redisBefore = runningRedis()
  const saved = `${POLICY_RC_D}.before-fastify-ws-gateway`
  // The machine's own policy, unless it is one a killed run of this script left behind.
  const hadPolicy = existsSync(POLICY_RC_D) && !readFileSync(POLICY_RC_D, 'utf8').includes(MARKER)
  // Ctrl-C reaches apt-get too; the cleanup below still has to run after it.
  const ignore = () => {}
  process.on('SIGINT', ignore).on('SIGTERM', ignore)
  if (hadPolicy) renameSync(POLICY_RC_D, saved)
  writeFileSync(POLICY_RC_D, `#!/bin/sh\n${MARKER}: no service starts while it installs\nexit 101\n`, { mode: 0o755 })
  try {
    const wait = ['-o', 'DPkg::Lock::Timeout=300']
    run(APT_GET, [...wait, 'update'])
    run(APT_GET, [...wait, 'install', '-y', '--no-install-recommends', ...packages])
  } finally {
    rmSync(POLICY_RC_D, { force: true })
    if (hadPolicy) renameSync(saved, POLICY_RC_D)
    process.off('SIGINT', ignore).off('SIGTERM', ignore)
  }
  const redis = runningRedis()
  if (redis !== undefined && redis !== redisBefore) {
    log(`stopping the Redis the package started (pid ${redis})`)
    process.kill(redis, 'SIGTERM')
    for (let i = 0; i < 50 && runningRedis() === redis; i++) await sleep(100)
  }
  if (packages.includes('redis-server') && existsSync('/run/systemd/system')) {
    // Not running now, but Debian enables the unit: it would listen on 6379 after a reboot.
    try { run('systemctl', ['disable', 'redis-server.service']) } catch (err) { log(`warning: ${err.message}`) }
  }
}

const missing = missingNow()
const what = missing.map((pkg) => `${pkg} (${NEEDED[pkg]})`).join(' and ')
if (missing.length === 0) {
  log(`${Object.values(NEEDED).join(' and ')} are installed`)
} else if (process.getuid?.() === 0 && existsSync(APT_GET)) {
  log(`installing Debian's ${what}`)
  try {
    // Another run may have installed them while this one waited for the lock.
    await withLock(async () => { if (missingNow().length > 0) await install(missingNow()) })
  } catch (err) {
    console.error(`provision: ${err.message}`)
    process.exit(1)
  }
  const still = missingNow()
  if (still.length > 0) {
    console.error(`provision: apt-get ran, but ${still.map((pkg) => NEEDED[pkg]).join(' and ')} is still missing`)
    process.exit(1)
  }
  log(`installed ${missing.join(' and ')}`)
} else {
  const sudo = process.getuid?.() === 0 ? '' : 'sudo '
  const script = `${sudo}${process.execPath} ${fileURLToPath(import.meta.url)}`
  const apt = `${sudo}apt-get update && ${sudo}apt-get install -y --no-install-recommends ${missing.join(' ')}`
  console.error((existsSync(APT_GET)
    ? [`the tests need Debian's ${what}; installing takes root. Run`,
        `  ${script}`,
        `which runs \`${apt}\` without letting the packages start a service (no Redis left on port 6379), then npm test again.`]
    : [`the tests need Debian's ${what}, and this machine has no apt-get. On Debian, run`,
        `  ${script}`,
        `elsewhere install Chromium and Redis from the system's packages so that ${Object.values(NEEDED).join(' and ')} exist.`]
  ).map((line) => `provision: ${line}`).join('\n'))
  process.exit(1)
}
