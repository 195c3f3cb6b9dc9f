/**
 * The control side of a server node of the cluster bench (gateway-node.ts, socketio-node.ts): the
 * orchestrator asks over IPC for a run of sends or broadcasts, the node makes the calls through
 * its own API and stamps each message with the time of the call (see protocol.ts), so a client
 * process can tell how long it took to arrive.
 */
import type { BroadcastDone, BroadcastRun, Count, NodeRequest, Rejections, SendRun, SendRunDone } from './protocol.js'
import { broadcastPayload, latencyPayload, monotonicMs } from './protocol.js'
import { sleep } from '../ws-clients.js'

/** One server's API, as the bench calls it. */
export interface NodeApi {
  /** Sends a text message to one connection (of this node or another). */
  send: (id: string, data: string) => Promise<void> | void
  /** Sends a text message to every connection; resolves with how many it was addressed to, when the server says. */
  broadcast: (data: string) => Promise<number | undefined> | undefined
  /** How many connections the peer's registry lists over every instance (once they are, a call can reach them). */
  count: () => Promise<number>
}

/** The calls of a run the API rejected. */
class Rejected implements Rejections {
  rejected: number[] = []
  firstError: string | undefined

  /** Makes the call for message `seq`; a rejection is noted with its code (the gateway's are coded) and message. */
  async call<T> (seq: number, make: () => Promise<T> | T): Promise<T | undefined> {
    try {
      return await make()
    } catch (error) {
      this.rejected.push(seq)
      this.firstError ??= error instanceof Error ? `${(error as { code?: string }).code ?? ''} ${error.message}`.trim() : String(error)
      return undefined
    }
  }
}

async function sendRun (api: NodeApi, run: SendRun): Promise<SendRunDone> {
  const calls = new Rejected()
  const end = run.firstSeq + run.count
  for (let seq = run.firstSeq; seq < end;) {
    const burst: Array<Promise<void>> = []
    for (let i = 0; i < run.burst && seq < end; i++, seq++) {
      const data = latencyPayload(seq, monotonicMs())
      burst.push(calls.call(seq, async () => await api.send(run.id, data)))
    }
    await Promise.all(burst)
    await sleep(run.thinkMs)
  }
  return { type: 'send-run-done', rejected: calls.rejected, firstError: calls.firstError }
}

async function broadcastRun (api: NodeApi, run: BroadcastRun): Promise<BroadcastDone> {
  const calls = new Rejected()
  const calledAt = monotonicMs()
  // Each call as soon as the previous one has returned, as code awaiting an async API makes them.
  // (Issued all at once, the gateway's calls each fan out to the local targets before their first
  // Redis command, and on 5,000 local targets the later calls' Redis commands wait out
  // `commandTimeout` behind that work: they reject CLUSTER_UNAVAILABLE.)
  const connections: number[] = []
  for (let seq = run.firstSeq; seq < run.firstSeq + run.count; seq++) {
    const addressed = await calls.call(seq, async () => await api.broadcast(broadcastPayload(seq)))
    if (addressed !== undefined) connections.push(addressed)
  }
  return { type: 'broadcast-done', calledAt, returnedAt: monotonicMs(), connections, rejected: calls.rejected, firstError: calls.firstError }
}

/** Answers the orchestrator's runs for as long as the process lives. */
export function serveControl (api: NodeApi): void {
  process.on('message', (message: NodeRequest) => {
    const running = message.type === 'send-run'
      ? sendRun(api, message)
      : message.type === 'broadcast-run'
        ? broadcastRun(api, message)
        : api.count().then((connections): Count => ({ type: 'count', connections }))
    running.then((reply) => process.send?.(reply), (error: unknown) => {
      process.send?.({ type: 'failed', message: error instanceof Error ? error.message : String(error) })
    })
  })
}
