/**
 * What re-masking costs the passthrough engine (issue 12 §5): every client frame it forwards gets
 * a fresh mask key (lib/relay/passthrough/mask.ts), its payload XORed once more. This times that
 * per frame for 64 B, 1 KiB and 64 KiB payloads, with bufferutil's native XOR (installed with the
 * package as an optional dependency) and with the JavaScript loop used without it.
 *
 *   npm run bench:remask [-- --ms 500]
 *
 * Pure CPU in one process; nothing is sent anywhere.
 */
import { fork } from 'node:child_process'
import { once } from 'node:events'
import Module from 'node:module'
import { parseArgs } from 'node:util'

const SIZES = [64, 1024, 64 * 1024]

interface Timing { size: number, nsPerFrame: number }

/** Nanoseconds per frame of `newMask` + `remask` on a masked frame of `size` payload bytes. */
async function time (ms: number): Promise<Timing[]> {
  const { newMask, remask } = await import('../lib/relay/passthrough/mask.js')
  return SIZES.map((size) => {
    const frame = Buffer.alloc(14 + size, 7)
    const run = (count: number): void => {
      for (let i = 0; i < count; i++) remask(frame, 14, frame.length, newMask(frame, 10), 0)
    }
    run(1000)
    let frames = 0
    const start = process.hrtime.bigint()
    const deadline = start + BigInt(ms) * 1_000_000n
    let now = start
    while (now < deadline) {
      run(100)
      frames += 100
      now = process.hrtime.bigint()
    }
    return { size, nsPerFrame: Math.round(Number(now - start) / frames) }
  })
}

/** Makes `require('bufferutil')` fail in this process, as where it did not install. */
function withoutBufferutil (): void {
  const resolve = (Module as unknown as { _resolveFilename: (request: string, ...rest: unknown[]) => string })._resolveFilename
  ;(Module as unknown as { _resolveFilename: typeof resolve })._resolveFilename = function (this: unknown, request, ...rest) {
    if (request === 'bufferutil') throw new Error('bufferutil left out')
    return resolve.call(this, request, ...rest)
  }
}

async function main (): Promise<void> {
  const { values } = parseArgs({ options: { ms: { type: 'string', default: '500' }, 'without-bufferutil': { type: 'boolean', default: false } } })
  const ms = Number(values.ms)
  if (values['without-bufferutil']) {
    withoutBufferutil()
    process.send?.(await time(ms))
    return
  }
  const native = await time(ms)
  const child = fork(__filename, ['--ms', String(ms), '--without-bufferutil'], { execArgv: ['--import', 'tsx'] })
  const [loop] = await once(child, 'message') as [Timing[]]
  process.stdout.write('| payload | re-mask with bufferutil, ns per frame | without bufferutil (JS loop), ns per frame |\n|---|---|---|\n')
  native.forEach(({ size, nsPerFrame }, i) => {
    process.stdout.write(`| ${size >= 1024 ? `${size / 1024} KiB` : `${size} B`} | ${nsPerFrame} | ${loop[i].nsPerFrame} |\n`)
  })
}

main().catch((err: unknown) => {
  process.stderr.write(`${err instanceof Error ? err.stack ?? err.message : String(err)}\n`)
  process.exit(1)
})
