/**
 * Peer C: nginx as a WebSocket reverse proxy (proxy_http_version 1.1 + Upgrade/Connection), run
 * in the foreground as our child with every path (config, pid, logs, temp) in a temp prefix, so
 * it needs no root-owned file and leaves nothing behind. Skipped when nginx is not on PATH
 * (Debian/Ubuntu: `apt-get install -y nginx-light`).
 */
import { spawnSync } from 'node:child_process'
import { mkdirSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'

/** nginx's version (e.g. "nginx/1.22.1"), or undefined when nginx is not on PATH. */
export function nginxVersion (): string | undefined {
  // nginx -v prints "nginx version: nginx/1.22.1" on stderr.
  const result = spawnSync('nginx', ['-v'], { encoding: 'utf8', timeout: 10_000 })
  if (result.error !== undefined || result.status !== 0) return undefined
  return `${result.stderr}${result.stdout}`.trim().replace(/^nginx version: /, '')
}

/** A port free right now on 127.0.0.1 (nginx cannot report an ephemeral port back to us). */
export async function freePort (): Promise<number> {
  const server = createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

/**
 * Write nginx.conf under `prefix` and return the arguments to start nginx in the foreground.
 * One worker, like the single-threaded Node peers; default proxy buffers, as most users run it.
 */
export function nginxArgs (prefix: string, listenPort: number, backendPort: number): string[] {
  for (const dir of ['logs', 'temp']) mkdirSync(join(prefix, dir), { recursive: true })
  const temp = join(prefix, 'temp')
  const config = `
worker_processes 1;
worker_rlimit_nofile 16384;
pid ${join(prefix, 'nginx.pid')};
error_log ${join(prefix, 'logs', 'error.log')} warn;
events { worker_connections 8192; }
http {
  access_log off;
  client_body_temp_path ${temp}/client_body;
  proxy_temp_path ${temp}/proxy;
  fastcgi_temp_path ${temp}/fastcgi;
  uwsgi_temp_path ${temp}/uwsgi;
  scgi_temp_path ${temp}/scgi;
  map $http_upgrade $connection_upgrade { default upgrade; '' close; }
  server {
    listen 127.0.0.1:${listenPort};
    location / {
      proxy_pass http://127.0.0.1:${backendPort};
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_read_timeout 1h;
    }
  }
}
`
  const file = join(prefix, 'nginx.conf')
  writeFileSync(file, config)
  return ['-p', prefix, '-c', file, '-g', 'daemon off;']
}
