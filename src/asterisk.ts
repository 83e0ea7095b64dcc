// Invoking Asterisk: the daemon and its remote CLI, always with -C so a config dir other than
// /etc/asterisk (a volume, a test's temp dir) is what Asterisk reads.
import { createInterface } from 'node:readline'
import { join } from 'node:path'
import { execa } from 'execa'

export interface AsteriskTarget {
  bin: string
  confDir: string
}

export const confArgs = (t: AsteriskTarget) => ['-C', join(t.confDir, 'asterisk.conf')]

export class RemoteConsoleError extends Error {
  readonly command: string
  constructor(command: string, detail: string) {
    super(`asterisk -rx "${command}": ${detail}`)
    this.name = 'RemoteConsoleError'
    this.command = command
  }
}

/** Run one CLI command in the running Asterisk and return its output. */
export async function rx(t: AsteriskTarget, command: string, timeoutMs = 10_000): Promise<string> {
  const r = await execa(t.bin, [...confArgs(t), '-rx', command], { reject: false, timeout: timeoutMs, stdin: 'ignore' })
  const out = `${r.stdout}`
  // Asterisk's remote console exits 0 even when it could not connect; its message says so.
  if (r.failed || /Unable to connect to remote asterisk/.test(out)) {
    throw new RemoteConsoleError(command, r.timedOut ? `no answer within ${timeoutMs} ms` : (out || `${r.stderr}`).trim() || `exit ${r.exitCode}`)
  }
  return out
}

export interface Exit {
  code: number | null
  signal: string | null
}

export interface Child {
  pid: number | undefined
  exited: Promise<Exit>
  kill(signal?: NodeJS.Signals): void
}

/** Asterisk in the foreground (-f), its output line by line to `onLine`. */
export function spawnAsterisk(t: AsteriskTarget, opts: { user?: string; onLine: (line: string, stream: 'stdout' | 'stderr') => void }): Child {
  const drop = opts.user ? ['-U', opts.user, '-G', opts.user] : []
  const sub = execa(t.bin, ['-f', ...confArgs(t), ...drop], { reject: false, stdin: 'ignore', buffer: false, cleanup: true })
  for (const stream of ['stdout', 'stderr'] as const) {
    const s = sub[stream]
    if (s) createInterface({ input: s }).on('line', (l) => opts.onLine(l, stream))
  }
  return {
    pid: sub.pid,
    exited: sub.then((r) => ({ code: r.exitCode ?? null, signal: r.signal ?? null })),
    kill: (signal = 'SIGTERM') => void sub.kill(signal),
  }
}

/**
 * Resolves once Asterisk says it is fully booted. Until its control socket exists the remote
 * console can't connect, so connecting is retried; `alive` ends the wait if Asterisk exits first.
 */
export async function waitFullyBooted(t: AsteriskTarget, alive: () => boolean, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let last = ''
  while (alive()) {
    try {
      await rx(t, 'core waitfullybooted', Math.max(1000, deadline - Date.now()))
      return
    } catch (err) {
      last = (err as Error).message
    }
    if (Date.now() > deadline) throw new Error(`Asterisk did not finish booting within ${timeoutMs} ms: ${last}`)
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error('Asterisk exited while booting')
}
