/*
 * The gateway's TLS certificate. The sample makes a throw-away self-signed one at start, valid for
 * localhost and the loopback addresses for one day, so nothing secret is ever committed. To use a
 * real certificate, give CERT_FILE and KEY_FILE.
 */
import { readFile } from 'node:fs/promises'
import { generate } from 'selfsigned'

/** A PEM certificate and its private key, as `https.createServer` takes them. */
export interface TlsPair {
  cert: string
  key: string
}

/**
 * Makes a self-signed certificate for localhost, 127.0.0.1 and ::1. A client trusts it by
 * passing the certificate itself as its `ca` (never with `rejectUnauthorized: false`).
 *
 * @example
 * ```ts
 * const { cert, key } = await createCertificate()
 * const app = Fastify({ https: { cert, key } })
 * ```
 */
export async function createCertificate (): Promise<TlsPair> {
  const notBeforeDate = new Date(Date.now() - 60_000)
  const pems = await generate([{ name: 'commonName', value: 'localhost' }], {
    keyType: 'ec', // P-256: generated in milliseconds, where RSA takes a noticeable moment
    algorithm: 'sha256',
    notBeforeDate,
    notAfterDate: new Date(notBeforeDate.getTime() + 24 * 3600_000),
    extensions: [
      { name: 'basicConstraints', cA: false },
      { name: 'keyUsage', digitalSignature: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      { name: 'subjectAltName', altNames: [{ type: 2, value: 'localhost' }, { type: 7, ip: '127.0.0.1' }, { type: 7, ip: '::1' }] }
    ]
  })
  return { cert: pems.cert, key: pems.private }
}

/**
 * The certificate given by CERT_FILE and KEY_FILE, or a fresh self-signed one when neither is set.
 * `generated` tells the caller whether the client will need this certificate as its CA.
 */
export async function loadCertificate (certFile?: string, keyFile?: string): Promise<TlsPair & { generated: boolean }> {
  if (certFile === undefined && keyFile === undefined) return { ...await createCertificate(), generated: true }
  if (certFile === undefined || keyFile === undefined) throw new Error('give both CERT_FILE and KEY_FILE, or neither')
  return { cert: await readFile(certFile, 'utf8'), key: await readFile(keyFile, 'utf8'), generated: false }
}
