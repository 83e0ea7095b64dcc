// Keeps Asterisk running: restarts it after a crash with backoff, gives up on a crash loop, and
// stops it gracefully on request (drain, then hard stop after a deadline, then kill).
import type { Child, Exit } from './process.ts'
import { EXIT, exitCodeOf } from '../base/errors.ts'
import type { Logger } from '../base/log.ts'
import { DEFAULT_POLICY, onCrash, type CrashHistory, type RestartPolicy } from './restart-policy.ts'

export interface SuperviseDeps {
  start(): Child
  /**
   * Resolves when the child is fully booted; rejects if it can't tell. `gone` is aborted once the
   * child exited: the wait then ends, leaving no process of its own behind.
   */
  waitReady(child: Child, gone: AbortSignal): Promise<void>
  /** Refuse new calls and let calls in progress finish (`core stop gracefully`). */
  drain(): Promise<void>
  /** Stop at once, hanging up calls (`core stop now`). */
  stopNow(): Promise<void>
  log: Logger
  graceMs: number
  /** After a hard stop, how long before SIGKILL. */
  killAfterMs?: number
  policy?: RestartPolicy
  now?: () => number
  onReady?: (child: Child, bootMs: number) => void
}

export interface Supervisor {
  /** Stop Asterisk and end supervision; resolves when no child is left. */
  stop(reason: string): Promise<void>
  /** The exit code for `run`: 0 after a requested stop, non-zero after a crash loop. */
  done: Promise<number>
  current(): Child | undefined
  /** The current child said it is fully booted (its remote console answers). */
  booted(): boolean
}

const describe = (e: Exit) => (e.signal ? `signal ${e.signal}` : `code ${e.code}`)

function timeout(ms: number): { promise: Promise<'timeout'>; cancel: () => void } {
  let timer: NodeJS.Timeout | undefined
  const promise = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), ms)))
  return { promise, cancel: () => clearTimeout(timer) }
}

export function supervise(deps: SuperviseDeps): Supervisor {
  const now = deps.now ?? Date.now
  const policy = deps.policy ?? DEFAULT_POLICY
  const log = deps.log
  let child: Child | undefined
  /** The current child said it is fully booted. */
  let booted = false
  let stopping: Promise<void> | undefined
  let wakeStop: (() => void) | undefined
  const stopRequested = new Promise<void>((r) => (wakeStop = r))

  /** Waits up to `ms` for `c` to exit, then SIGKILLs it. */
  async function exitOrKill(c: Child, ms: number): Promise<Exit> {
    const kill = timeout(ms)
    const r = await Promise.race([c.exited, kill.promise])
    kill.cancel()
    if (r !== 'timeout') return r
    log.warn('Asterisk did not stop; killing it')
    c.kill('SIGKILL')
    return c.exited
  }

  async function stopChild(c: Child, reason: string): Promise<void> {
    const t0 = now()
    if (!booted) {
      // No call can be up yet, and the remote console the drain needs may not exist yet: ask
      // Asterisk itself, by signal.
      log.info(`stopping Asterisk (${reason}) before it finished booting: no call is up; sending it SIGTERM`)
      c.kill('SIGTERM')
      const r = await exitOrKill(c, deps.graceMs)
      log.info(`Asterisk stopped (${describe(r)}) after ${now() - t0} ms`)
      return
    }
    log.info(`stopping Asterisk (${reason}): new calls refused, calls in progress have ${deps.graceMs / 1000} s`)
    // Asterisk's remote console stays connected until the stop is done, so the request is not
    // awaited: the deadline below counts from now.
    void deps.drain().catch((err: Error) => log.warn(`graceful stop request failed: ${err.message}`))
    const grace = timeout(deps.graceMs)
    let r = await Promise.race([c.exited, grace.promise])
    grace.cancel()
    if (r === 'timeout') {
      log.warn(`calls still up after ${deps.graceMs / 1000} s; stopping Asterisk now`)
      void deps.stopNow().catch((err: Error) => log.warn(`hard stop request failed: ${err.message}`))
      r = await exitOrKill(c, deps.killAfterMs ?? 1500)
    }
    log.info(`Asterisk stopped (${describe(r)}) after ${now() - t0} ms`)
  }

  async function loop(): Promise<number> {
    let history: CrashHistory = { crashes: [], streak: 0 }
    for (;;) {
      const startedAt = now()
      const c = deps.start()
      child = c
      booted = false
      log.info('Asterisk started', { pid: c.pid })
      const gone = new AbortController()
      void c.exited.then(() => gone.abort())
      const booting = deps
        .waitReady(c, gone.signal)
        .then(() => {
          const bootMs = now() - startedAt
          log.info(`Asterisk fully booted in ${bootMs} ms`, { pid: c.pid })
          if (c !== child) return
          booted = true
          // Booted while being stopped: the PBX is not ready for anything.
          if (!stopping) deps.onReady?.(c, bootMs)
        })
        .catch((err: Error) => gone.signal.aborted || log.warn(`could not confirm Asterisk booted: ${err.message}`))
      const first = await Promise.race([c.exited, stopRequested.then(() => 'stop' as const)])
      if (first === 'stop') {
        await stopping
        await booting
        return 0
      }
      await booting
      child = undefined
      const uptime = now() - startedAt
      const d = onCrash(history, now(), uptime, policy)
      history = d.history
      if (d.action === 'give-up') {
        log.error(`Asterisk exited unexpectedly (${describe(first)}) after ${uptime} ms; giving up: ${d.reason}`)
        return exitCodeOf(first) || EXIT.failure
      }
      log.error(`Asterisk exited unexpectedly (${describe(first)}) after ${uptime} ms; restarting in ${d.delayMs} ms`)
      const wait = timeout(d.delayMs)
      const woke = await Promise.race([wait.promise, stopRequested.then(() => 'stop' as const)])
      wait.cancel()
      if (woke === 'stop') return 0
    }
  }

  const done = loop()
  return {
    done,
    current: () => child,
    booted: () => booted,
    stop(reason: string) {
      if (!stopping) {
        const c = child
        stopping = c ? stopChild(c, reason) : Promise.resolve()
        wakeStop?.()
      }
      return stopping.then(() => done).then(() => undefined)
    },
  }
}
