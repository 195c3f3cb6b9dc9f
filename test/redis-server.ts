import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import net from 'node:net'
import { Redis } from 'ioredis'
import type { TestLike } from './helpers'

/** A port nobody listens on right now (the kernel's pick, released at once). */
async function freePort (): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as net.AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}

export interface RedisServer {
  url: string
  port: number
  /** A client for the test's own checks and commands (CLIENT PAUSE, DBSIZE …). */
  admin: Redis
  /** SIGKILLs the server (everything in it is lost, as in a crash). */
  kill: () => Promise<void>
  /** Starts it again on the same port, empty. */
  restart: () => Promise<void>
}

/**
 * A redis-server of the test file's own on a random port, without persistence; killed at
 * teardown. Never 6379, never a shared one.
 */
export async function startRedis (t: TestLike): Promise<RedisServer> {
  const port = await freePort()
  let child: ChildProcess | undefined
  const start = async (): Promise<void> => {
    child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' })
    for (let i = 0; i < 100; i++) {
      const probe = new Redis({ port, host: '127.0.0.1', lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 })
      probe.on('error', () => {})
      try {
        await probe.connect()
        if (await probe.ping() === 'PONG') return
      } catch {
      } finally {
        probe.disconnect()
      }
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    throw new Error('redis-server did not answer PING')
  }
  const kill = async (): Promise<void> => {
    if (child === undefined || child.exitCode !== null || child.signalCode !== null) return
    const exited = once(child, 'exit')
    child.kill('SIGKILL')
    await exited
  }
  await start()
  const admin = new Redis({ port, host: '127.0.0.1', maxRetriesPerRequest: 1 })
  admin.on('error', () => {})
  t.teardown(async () => {
    admin.disconnect()
    await kill()
  })
  return { url: `redis://127.0.0.1:${port}`, port, admin, kill, restart: start }
}
