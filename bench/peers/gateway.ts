/**
 * The peer under test: this project's plugin, loaded from the built dist/ (the code users get
 * from npm), with one backend and HS256 JWT authentication on.
 *
 * The path of dist/index.js is handed down by run.ts (see dist-plugin.ts); run.ts skips this
 * peer when it is missing.
 */
import type { AddressInfo } from 'node:net'
import { announceReady, requiredArg } from '../child-ipc.js'
import { gatewayApp } from '../dist-plugin.js'

const distEntry = requiredArg(0, 'path of dist/index.js')
const backendUrl = requiredArg(1, 'backend ws URL')
const secret = requiredArg(2, 'JWT secret')
/** Extra plugin options as JSON (e.g. `{"engine":"ws"}`), so one file serves every variant. */
const extra = JSON.parse(process.argv[5] ?? '{}') as Record<string, unknown>

async function main (): Promise<void> {
  const app = await gatewayApp(distEntry, backendUrl, secret, extra)
  await app.listen({ host: '127.0.0.1', port: 0 })
  announceReady((app.server.address() as AddressInfo).port)
}

main().catch((error: unknown) => {
  process.stderr.write(`gateway: ${error instanceof Error ? error.stack ?? error.message : String(error)}\n`)
  process.exit(1)
})
