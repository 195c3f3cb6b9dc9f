/**
 * What the bench's orchestrators (run.ts, cluster.ts) share: progress lines on stderr, writing a
 * run's results, and the lifecycle around their main function — no child outlives the
 * orchestrator, and an interrupt still writes what was measured so far.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { join, relative } from 'node:path'
import { killAllNow, stopAll } from './children.js'

/** A progress writer: `[<tag> hh:mm:ss] line` on stderr. */
export function progressWriter (tag: string): (line: string) => void {
  return (line) => process.stderr.write(`[${tag} ${new Date().toISOString().slice(11, 19)}] ${line}\n`)
}

export interface ResultFiles {
  /** What ran, for the title: `bench`, `cluster bench`. */
  what: string
  outDir: string
  /** File name prefix, e.g. `bench`: results go to `<prefix>-<start time>[-quick][-partial]` and `<latest>`. */
  prefix: string
  latest: string
  startedAt: Date
  quick: boolean
  interrupted: boolean
  /** The run's options, kept in the JSON. */
  options: unknown
}

/** What every report's JSON starts with. */
export interface RunMeta {
  startedAt: string
  finishedAt: string
  interrupted: boolean
  options: unknown
}

/**
 * Renders a run's report under its title (`render`) and writes the markdown and JSON (stamped, and
 * as the latest), and the markdown to stdout.
 */
export function writeResults (files: ResultFiles, render: (title: string, meta: RunMeta) => { markdown: string, json: string }, progress: (line: string) => void): void {
  const title = `# fastify-ws-gateway ${files.what} ${files.quick ? '(quick) ' : ''}${files.startedAt.toISOString()}` +
    (files.interrupted ? ' — INTERRUPTED, partial' : '')
  const meta = { startedAt: files.startedAt.toISOString(), finishedAt: new Date().toISOString(), interrupted: files.interrupted, options: files.options }
  const { markdown, json } = render(title, meta)
  mkdirSync(files.outDir, { recursive: true })
  const stamp = files.startedAt.toISOString().replace(/[:.]/g, '-')
  const base = join(files.outDir, `${files.prefix}-${stamp}${files.quick ? '-quick' : ''}${files.interrupted ? '-partial' : ''}`)
  for (const target of [base, join(files.outDir, files.latest)]) {
    writeFileSync(`${target}.json`, json)
    writeFileSync(`${target}.md`, markdown)
  }
  process.stdout.write(`${markdown}\n`)
  progress(`results written to ${relative(process.cwd(), base)}.{json,md}`)
}

/**
 * Runs an orchestrator's `main` (its exit code), stopping every child on SIGINT/SIGTERM (then
 * `partial()` writes what was measured, and the exit code is 130), SIGKILLing them on any exit,
 * and on a crash of `main`.
 */
export function runOrchestrator (main: () => Promise<number>, partial: () => void, progress: (line: string) => void): void {
  process.on('exit', killAllNow)
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      progress(`${signal}: stopping children`)
      const forced = setTimeout(() => process.exit(130), 5_000)
      stopAll().finally(() => {
        clearTimeout(forced)
        partial()
        process.exit(130)
      })
    })
  }
  main().then((code) => {
    process.exitCode = code
  }, async (error: unknown) => {
    progress(`error: ${error instanceof Error ? error.stack ?? error.message : String(error)}`)
    await stopAll()
    process.exitCode = 1
  })
}
