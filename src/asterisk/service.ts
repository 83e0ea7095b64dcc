// Asterisk as one of run's services: spawned and supervised (restart with backoff, give up on a
// crash loop, drain on stop), its console output logged, and a view of it for the other services.
import { errorMessage } from '../base/errors.ts'
import { rx, spawnAsterisk, waitFullyBooted, type AsteriskTarget } from './process.ts'
import { supervise, type Supervisor } from './supervise.ts'
import type { Logger } from '../base/log.ts'
import type { AsteriskView, Service } from '../service.ts'

export interface AsteriskServiceOptions {
  target: AsteriskTarget
  /** The user Asterisk drops root to; none keeps the current one. */
  user?: string | undefined
  graceMs: number
  log: Logger
  /** Lines run's own log should not carry (the service that reads them logs a summary). */
  quiet?: (line: string) => boolean
}

export interface AsteriskService extends Service {
  view: AsteriskView
  /** The exit code for run once supervision ends: 0 after a stop, Asterisk's after a give-up. */
  done: Promise<number>
  state(): 'down' | 'booting' | 'up'
}

export function asteriskService(opts: AsteriskServiceOptions): AsteriskService {
  const lineListeners: ((line: string) => void)[] = []
  const readyListeners: (() => void)[] = []
  const astLog = opts.log.child('asterisk')
  let supervisor: Supervisor | undefined
  let resolveDone: (code: number) => void = () => {}
  const done = new Promise<number>((r) => (resolveDone = r))
  // Each listener is another service's: one that throws is logged, and Asterisk's output goes on.
  const each = <A extends unknown[]>(listeners: ((...a: A) => void)[], ...args: A) => {
    for (const l of listeners) {
      try {
        l(...args)
      } catch (err) {
        opts.log.error(`a listener of Asterisk's events failed: ${errorMessage(err)}`)
      }
    }
  }
  const onLine = (line: string) => {
    if (!opts.quiet?.(line)) {
      if (/\bERROR\[/.test(line)) astLog.error(line)
      else if (/\bWARNING\[/.test(line)) astLog.warn(line)
      else astLog.info(line)
    }
    each(lineListeners, line)
  }
  const view: AsteriskView = {
    onLine: (l) => void lineListeners.push(l),
    onReady: (l) => void readyListeners.push(l),
    rx: (command) => rx(opts.target, command),
    booted: () => supervisor?.booted() ?? false,
  }
  return {
    name: 'asterisk',
    view,
    done,
    state: () => (!supervisor?.current() ? 'down' : supervisor.booted() ? 'up' : 'booting'),
    start() {
      supervisor = supervise({
        start: () => spawnAsterisk(opts.target, { user: opts.user, onLine }),
        waitReady: (_c, gone) => waitFullyBooted(opts.target, gone),
        drain: () => rx(opts.target, 'core stop gracefully').then(() => undefined),
        stopNow: () => rx(opts.target, 'core stop now').then(() => undefined),
        log: opts.log,
        graceMs: opts.graceMs,
        onReady: () => each(readyListeners),
      })
      void supervisor.done.then(resolveDone)
      return Promise.resolve()
    },
    async stop(_deadline, why = 'stop') {
      await supervisor?.stop(why)
    },
  }
}
