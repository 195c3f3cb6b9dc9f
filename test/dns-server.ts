import { once } from 'node:events'
import { createSocket } from 'node:dgram'
import type { AddressInfo } from 'node:net'
import dnsPacket, { type Answer } from 'dns-packet'
import type { TestLike } from './helpers'

/** A record the test DNS server answers with. */
export type TestRecord =
  | { type: 'A' | 'AAAA', address: string, ttl?: number }
  | { type: 'SRV', target: string, port: number, priority?: number, weight?: number, ttl?: number }

/** What a name answers: records, no such name, a server failure, or silence (a timeout). */
export type Zone = Record<string, TestRecord[] | 'NXDOMAIN' | 'SERVFAIL' | 'DROP'>

export interface TestDnsServer {
  /** `127.0.0.1:port`, for the gateway's `dns.servers`. */
  server: string
  /** The zone; change it mid-test and the next query sees it. */
  zone: Zone
  /** Queries received, as `TYPE name`. */
  queries: string[]
}

const RCODE = { NXDOMAIN: 3, SERVFAIL: 2 }

/**
 * A tiny authoritative DNS server over UDP on 127.0.0.1 (port 0): answers A, AAAA and SRV
 * questions from `zone` (a name with records but none of the asked type answers NODATA).
 */
export async function startDnsServer (t: TestLike, zone: Zone = {}): Promise<TestDnsServer> {
  const socket = createSocket('udp4')
  socket.bind(0, '127.0.0.1')
  await once(socket, 'listening')
  const dns: TestDnsServer = { server: `127.0.0.1:${(socket.address() as AddressInfo).port}`, zone, queries: [] }
  socket.on('message', (message, peer) => {
    const query = dnsPacket.decode(message)
    const question = (query.questions ?? [])[0]
    dns.queries.push(`${question.type} ${question.name}`)
    const entry = dns.zone[question.name]
    if (entry === 'DROP') return
    const answers: Answer[] = []
    let flags = dnsPacket.AUTHORITATIVE_ANSWER
    if (entry === undefined || entry === 'NXDOMAIN' || entry === 'SERVFAIL') flags |= RCODE[entry ?? 'NXDOMAIN']
    else {
      for (const record of entry.filter((record) => record.type === question.type)) {
        const ttl = record.ttl ?? 1
        answers.push(record.type === 'SRV'
          ? { type: 'SRV', name: question.name, ttl, data: { target: record.target, port: record.port, priority: record.priority ?? 0, weight: record.weight ?? 1 } }
          : { type: record.type, name: question.name, ttl, data: record.address })
      }
    }
    socket.send(dnsPacket.encode({ type: 'response', id: query.id, flags, questions: query.questions, answers }), peer.port, peer.address)
  })
  t.teardown(() => socket.close())
  return dns
}
