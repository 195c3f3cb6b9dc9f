/**
 * The control side of a server node of the cluster bench (gateway-node.ts, socketio-node.ts): the
 * orchestrator asks over IPC for a run of sends or broadcasts, the node makes the calls through
 * its own API and stamps each message with the time of the call (see protocol.ts), so a client
 * process can tell how long it took to arrive.
 */
import type { BroadcastDone, BroadcastRun, NodeRequest, SendRun, SendRunDone } from './protocol.js'
import { broadcastPayload, latencyPayload, monotonicMs } from './protocol.js'
import { ErrorTally, sleep } from '../ws-clients.js'

/** One server's API, as the bench calls it. */
export interface NodeApi {
  /** Sends a text message to one connection (of this node or another). */
  send: (id: string, data: string) => Promise<void> | void
  /** Sends a text message to every connection; resolves with how many it was addressed to, when the server says. */
  broadcast: (data: string) => Promise<number | undefined> | undefined
}

/** An API rejection as the report shows it: its code (the gateway's are coded) and message. */
function describe (error: unknown): string {
  return error instanceof Error ? `${(error as { code?: string }).code ?? ''} ${error.message}`.trim() : String(error)
}

async function sendRun (api: NodeApi, run: SendRun): Promise<SendRunDone> {
  const tally = new ErrorTally()
  const end = run.firstSeq + run.count
  const call = async (seq: number): Promise<void> => {
    try {
      await api.send(run.id, latencyPayload(seq, monotonicMs()))
    } catch (error) {
      tally.add(describe(error))
    }
  }
  for (let seq = run.firstSeq; seq < end;) {
    const calls: Array<Promise<void>> = []
    for (let i = 0; i < run.burst && seq < end; i++, seq++) calls.push(call(seq))
    await Promise.all(calls)
    await sleep(run.thinkMs)
  }
  return { type: 'send-run-done', calls: run.count, errors: tally.count, firstError: tally.first }
}

async function broadcastRun (api: NodeApi, run: BroadcastRun): Promise<BroadcastDone> {
  const tally = new ErrorTally()
  const calledAt = monotonicMs()
  const call = async (seq: number): Promise<number | undefined> => {
    try {
      return await api.broadcast(broadcastPayload(seq))
    } catch (error) {
      tally.add(describe(error))
      return undefined
    }
  }
  // Each call as soon as the previous one has returned, as code awaiting an async API makes them.
  // (Issued all at once, the gateway's calls each fan out to the local targets before their first
  // Redis command, and on 5,000 local targets the later calls' Redis commands wait out
  // `commandTimeout` behind that work: they reject CLUSTER_UNAVAILABLE.)
  const counts: Array<number | undefined> = []
  for (let seq = run.firstSeq; seq < run.firstSeq + run.count; seq++) counts.push(await call(seq))
  const connections = counts.every((count) => count !== undefined) ? counts as number[] : undefined
  return { type: 'broadcast-done', calledAt, connections, errors: tally.count, firstError: tally.first }
}

/** Answers the orchestrator's runs for as long as the process lives. */
export function serveControl (api: NodeApi): void {
  process.on('message', (message: NodeRequest) => {
    const running = message.type === 'send-run'
      ? sendRun(api, message)
      : message.type === 'broadcast-run' ? broadcastRun(api, message) : undefined
    running?.then((reply) => process.send?.(reply), (error: unknown) => {
      process.send?.({ type: 'failed', message: error instanceof Error ? error.message : String(error) })
    })
  })
}
