// What to reload in Asterisk for a changed config file, and doing it only when the file is good.
import { errorMessage } from '../base/errors.ts'
import { basename } from 'node:path'
import type { Logger } from '../base/log.ts'

/**
 * The narrowest CLI command that makes Asterisk read `file` again. PJSIP files reload with
 * res_pjsip (the wizard follows it, and wizard hints with it, so no dial plan reload is needed).
 */
export function reloadCommand(file: string): string {
  const name = basename(file)
  if (name.startsWith('pjsip')) return 'module reload res_pjsip.so'
  if (name.startsWith('extensions')) return 'dialplan reload'
  return BY_FILE[name] ?? 'core reload'
}

const BY_FILE: Record<string, string> = {
  'minivm.conf': 'module reload app_minivm.so',
  'rtp.conf': 'module reload res_rtp_asterisk.so',
  'logger.conf': 'logger reload',
}

/** Distinct commands for a burst of changed files, in a stable order; a core reload covers all. */
export function reloadCommands(files: string[]): string[] {
  const commands = [...new Set(files.map(reloadCommand))].sort()
  return commands.includes('core reload') ? ['core reload'] : commands
}

export interface ReloadDeps {
  /** file:line problems in the config dir as it is now; empty when Asterisk can take it. */
  check: () => Promise<string[]>
  rx: (command: string) => Promise<string>
  log: Logger
  now?: () => number
}

/** Why Asterisk reloads and what it runs for that, e.g. a saved file or SIGHUP. */
export interface ReloadRequest {
  /** For the log: "after <reason>". */
  reason: string
  commands: string[]
}

export function requestFor(files: string[]): ReloadRequest {
  return { reason: `a change to ${files.map((f) => basename(f)).join(', ')}`, commands: reloadCommands(files) }
}

/** Check, then reload; a broken file leaves Asterisk on the config it has. Returns whether it reloaded. */
export async function reloadChanged(files: string[], deps: ReloadDeps): Promise<boolean> {
  return reload(requestFor(files), deps)
}

/**
 * Runs a reload command until Asterisk takes it. While one reload runs, Asterisk answers another
 * with "A module reload request is already in progress" and ignores it (the command succeeds): a
 * saved file, a new certificate and a ban can ask at once, and none may be lost.
 */
export async function rxReload(rx: (command: string) => Promise<string>, command: string, tries = 50): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const out = await rx(command)
    if (!/already in progress/.test(out)) return
    if (attempt >= tries) throw new Error(`Asterisk kept answering \`${out.trim()}\` to ${command}`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

export async function reload(req: ReloadRequest, deps: ReloadDeps): Promise<boolean> {
  const now = deps.now ?? Date.now
  let problems: string[]
  try {
    problems = await deps.check()
  } catch (err) {
    // A symlink loop or an unreadable include makes the check itself fail: that is a problem
    // with the files like any other, never a reason to end the PBX.
    problems = [`checking the config after ${req.reason} failed: ${errorMessage(err)}`]
  }
  if (problems.length) {
    for (const p of problems) deps.log.error(p)
    deps.log.error(
      `not reloading after ${req.reason}: Asterisk keeps its current configuration until the file is fixed`,
    )
    return false
  }
  for (const command of req.commands) {
    const t0 = now()
    try {
      await rxReload(deps.rx, command)
      deps.log.info(`reloaded after ${req.reason}`, { command, ms: now() - t0 })
    } catch (err) {
      deps.log.error(`reload after ${req.reason} failed: ${errorMessage(err)}`, { command })
      return false
    }
  }
  return true
}

export interface Reloader {
  /** Reload now, after the one in progress, or once Asterisk is up; never rejects. */
  request(req: ReloadRequest): Promise<void>
  /** Asterisk is up: what waited for it runs now. */
  ready(): void
}

/**
 * One reload at a time, whoever asks (a saved file, SIGHUP). While Asterisk boots its remote
 * console is not up and it may or may not have read the file yet: the request waits for ready().
 */
export function reloader(deps: ReloadDeps & { state: () => 'down' | 'booting' | 'up' }): Reloader {
  let chain: Promise<unknown> = Promise.resolve()
  const waiting: ReloadRequest[] = []
  const queue = (req: ReloadRequest) => {
    chain = chain.then(() => reload(req, deps))
    return chain.then(() => undefined)
  }
  return {
    request(req) {
      const state = deps.state()
      if (state === 'down') {
        deps.log.info(`Asterisk is not running; it reads the files when it starts (${req.reason})`)
        return Promise.resolve()
      }
      if (state === 'booting') {
        deps.log.info(`Asterisk is still booting; reloading after ${req.reason} once it is up`)
        waiting.push(req)
        return Promise.resolve()
      }
      return queue(req)
    },
    ready() {
      if (!waiting.length) return
      const reasons = waiting.map((r) => r.reason)
      const commands = [...new Set(waiting.flatMap((r) => r.commands))].sort()
      waiting.length = 0
      void queue({ reason: reasons.join(' and '), commands })
    },
  }
}
