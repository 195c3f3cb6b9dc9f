import { EventEmitter } from 'node:events'

/**
 * The abort signal of one backend request: an EventEmitter with `aborted` and `reason`, which
 * undici, ws and the queue accept as a signal. An AbortController costs several times more per
 * request (its EventTarget), and a gateway makes one of these per message.
 */
export class RequestSignal extends EventEmitter {
  aborted = false
  reason: unknown

  /** `promise`, or a rejection with the abort's reason as soon as this is aborted. */
  async race<T> (promise: Promise<T>): Promise<T> {
    return await new Promise<T>((resolve, reject) => {
      const onAbort = (): void => reject(this.reason)
      this.once('abort', onAbort)
      promise.then(resolve, reject).finally(() => this.removeListener('abort', onAbort))
    })
  }

  /** Aborts: sets `reason` and emits `abort`. The gateway aborts a request at most once. */
  abort (reason: unknown): void {
    this.aborted = true
    this.reason = reason
    this.emit('abort')
  }
}
