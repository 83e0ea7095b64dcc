// What to reload in Asterisk for a changed config file, and doing it only when the file is good.
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

/** Distinct commands for a burst of changed files, in a stable order. */
export function reloadCommands(files: string[]): string[] {
  return [...new Set(files.map(reloadCommand))].sort()
}

export interface ReloadDeps {
  /** file:line problems in the config dir as it is now; empty when Asterisk can take it. */
  check: () => Promise<string[]>
  rx: (command: string) => Promise<string>
  log: Logger
  now?: () => number
}

/** Check, then reload; a broken file leaves Asterisk on the config it has. Returns whether it reloaded. */
export async function reloadChanged(files: string[], deps: ReloadDeps): Promise<boolean> {
  const now = deps.now ?? Date.now
  const names = files.map((f) => basename(f)).join(', ')
  let problems: string[]
  try {
    problems = await deps.check()
  } catch (err) {
    // A symlink loop or an unreadable include makes the check itself fail: that is a problem
    // with the files like any other, never a reason to end the PBX.
    problems = [`checking the config after the change to ${names} failed: ${(err as Error).message}`]
  }
  if (problems.length) {
    for (const p of problems) deps.log.error(p)
    deps.log.error(
      `not reloading after the change to ${names}: Asterisk keeps its current configuration until the file is fixed`,
    )
    return false
  }
  for (const command of reloadCommands(files)) {
    const t0 = now()
    try {
      await deps.rx(command)
      deps.log.info(`reloaded after a change to ${names}`, { command, ms: now() - t0 })
    } catch (err) {
      deps.log.error(`reload after a change to ${names} failed: ${(err as Error).message}`, { command })
      return false
    }
  }
  return true
}
