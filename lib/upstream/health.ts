import type { ResolvedBackend } from '../options/types'

/** Where an endpoint stands: taking connections, ejected for a while, or back on trial. */
export type HealthState = 'healthy' | 'probation' | 'ejected'

/**
 * Passive health of one endpoint (outlier ejection, as nginx's `max_fails`/`fail_timeout` and
 * Envoy's consecutive-failure detector): `failures` connect failures in a row eject it for
 * `ejectTime`, doubled for each ejection in a row up to `maxEjectTime`. When the time is up it is
 * on probation: the next failure ejects it again (for longer), the next success makes it healthy
 * and forgets its past ejections. The state moves on lazily when read, so no timer is needed.
 */
export class Health {
  private failures = 0
  private ejections = 0
  private ejectedUntil = 0
  private probation = false

  /** `settings` false: never ejected. `onEject` is called on each ejection (for the metrics). */
  constructor (private readonly settings: ResolvedBackend['health'], private readonly onEject: () => void) {}

  get state (): HealthState {
    if (this.ejectedUntil === 0) return this.probation ? 'probation' : 'healthy'
    if (this.ejectedUntil > Date.now()) return 'ejected'
    this.ejectedUntil = 0
    this.probation = true
    return 'probation'
  }

  /** The endpoint accepted a connection (or answered a 4xx, which is an answer too). */
  success (): void {
    this.failures = 0
    if (this.state === 'healthy') return
    // A success while ejected (a probe, or an attempt that began before the ejection) ends the
    // ejection early, on probation; a success on probation ends the trial.
    if (this.ejectedUntil !== 0) {
      this.ejectedUntil = 0
      this.probation = true
      return
    }
    this.probation = false
    this.ejections = 0
  }

  /** The endpoint was unreachable, answered 3xx/5xx, misbehaved or timed out. */
  failure (): void {
    if (this.settings === false) return
    const state = this.state
    if (state === 'ejected') return
    this.failures++
    if (state === 'probation' || this.failures >= this.settings.failures) this.eject(this.settings)
  }

  private eject ({ ejectTime, maxEjectTime }: Exclude<ResolvedBackend['health'], false>): void {
    this.ejections++
    this.ejectedUntil = Date.now() + Math.min(ejectTime * 2 ** (this.ejections - 1), maxEjectTime)
    this.probation = false
    this.failures = 0
    this.onEject()
  }
}
