/**
 * Readers for Linux /proc: per-process CPU time and RSS, machine-wide CPU time, and the
 * process tree (nginx forks workers we did not start ourselves but must measure and stop).
 */
import { execFileSync } from 'node:child_process'
import { readFileSync, readdirSync } from 'node:fs'

/** Clock ticks per second used by /proc/<pid>/stat and /proc/stat (USER_HZ, nearly always 100). */
export const CLOCK_TICKS: number = readClockTicks()

function readClockTicks (): number {
  try {
    const value = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim())
    return Number.isFinite(value) && value > 0 ? value : 100
  } catch {
    return 100
  }
}

/** Fields of /proc/<pid>/stat after the command name, which may itself contain spaces. */
function statFields (pid: number): string[] | undefined {
  let text: string
  try {
    text = readFileSync(`/proc/${pid}/stat`, 'utf8')
  } catch {
    return undefined
  }
  return text.slice(text.lastIndexOf(')') + 2).split(' ')
}

/** utime + stime of one process in seconds, or 0 when it has gone. */
export function processCpuSeconds (pid: number): number {
  const fields = statFields(pid)
  // After the name, field index 0 is state (stat field 3); utime and stime are fields 14 and 15.
  if (fields === undefined) return 0
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS
}

/** Sum of processCpuSeconds over several processes. */
export function processesCpuSeconds (pids: readonly number[]): number {
  let total = 0
  for (const pid of pids) total += processCpuSeconds(pid)
  return total
}

/**
 * Write-class system calls (write, writev, …) a process has made (`syscw` of /proc/<pid>/io), or
 * 0 when it has gone: on a socket server, how many writes its messages took.
 */
export function processWriteCalls (pid: number): number {
  try {
    const match = /^syscw: (\d+)/m.exec(readFileSync(`/proc/${pid}/io`, 'utf8'))
    return match === null ? 0 : Number(match[1])
  } catch {
    return 0
  }
}

/** Resident set size of one process in KiB (VmRSS), or 0 when it has gone. */
export function processRssKiB (pid: number): number {
  try {
    const match = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return match === null ? 0 : Number(match[1])
  } catch {
    return 0
  }
}

/** Parent PID of a process, or undefined when it has gone. */
export function parentPid (pid: number): number | undefined {
  const fields = statFields(pid)
  return fields === undefined ? undefined : Number(fields[1])
}

/** Direct children of a process, found by scanning /proc (no CONFIG_PROC_CHILDREN needed). */
export function childPids (pid: number): number[] {
  const children: number[] = []
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue
    if (parentPid(Number(entry)) === pid) children.push(Number(entry))
  }
  return children
}

/**
 * Machine-wide CPU time from the first line of /proc/stat, in seconds summed over all cores.
 * `busy` is user + nice + system + steal: irq and softirq are left out because loopback traffic
 * of our own processes is often processed there and would look like someone else's load; steal
 * is kept because it is exactly the load of other tenants of a shared host.
 */
export interface MachineCpu {
  busy: number
  total: number
}

export function machineCpu (): MachineCpu {
  const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? ''
  // cpu user nice system idle iowait irq softirq steal guest guest_nice (guest is inside user).
  const [user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0] =
    line.trim().split(/\s+/).slice(1, 9).map(Number)
  return {
    busy: (user + nice + system + steal) / CLOCK_TICKS,
    total: (user + nice + system + idle + iowait + irq + softirq + steal) / CLOCK_TICKS
  }
}
