// What `run` is made of after start-up: a list of services, each started in turn (its time
// logged) and stopped in reverse order within one deadline. A service's failure is its own: it is
// logged and the others go on; only the Asterisk supervisor's give-up ends the process.
import type { Logger } from './base/log.ts'
import type { Settings } from './config/settings.ts'

/** What a service may know of Asterisk while `run` supervises it. */
export interface AsteriskView {
  /** One line of Asterisk's console output (its logger's console channel), as it arrives. */
  onLine(listener: (line: string) => void): void
  /** Asterisk (re)started and its remote console answers; called again after every restart. */
  onReady(listener: () => void): void
  /** Runs a CLI command through Asterisk's remote console (`asterisk -rx`); rejects while it is down. */
  rx(command: string): Promise<string>
  /** Whether the current Asterisk is fully booted. */
  booted(): boolean
}

export interface ServiceContext {
  settings: Settings
  confDir: string
  /** This service's logger: its name is the component on every line. */
  log: Logger
  asterisk: AsteriskView
  /** Aborted once run is stopping: a start still under way skips what it has not begun. */
  signal: AbortSignal
}

export interface Service {
  /** Short, stable, lower case: the log component and the name in start/stop lines. */
  name: string
  /** Resolves once the service is serving. A rejection is logged; the PBX runs on without it. */
  start(ctx: ServiceContext): Promise<void>
  /**
   * Resolves once the service has let go of everything (sockets, timers, child processes, locks).
   * `deadline` (epoch ms) is when `run` stops waiting: work that would go past it is abandoned, and
   * left in a state the next start picks up (nothing half-written). `why` is for the log (SIGTERM).
   */
  stop(deadline: number, why?: string): Promise<void>
}
