import type { ConnectionOptions } from 'node:tls'

/** TLS settings passed to a backend connection (`wss:` and `https:` backends). */
export type BackendTlsOptions = Pick<ConnectionOptions, 'ca' | 'cert' | 'key' | 'pfx' | 'passphrase' | 'rejectUnauthorized' | 'servername' | 'checkServerIdentity'>
