// Invoking Asterisk: the daemon and its remote CLI, always with -C so a config dir other than
// /etc/asterisk (a volume, a test's temp dir) is what Asterisk reads.
//
// node:child_process, not execa (which the tests use): run is resident for the container's life
// and execa alone added ~130 ms to its start and ~17 MB to its memory (bench/supervise.ts), for
// two calls that need nothing beyond spawn and execFile.
import { errorMessage, ProcessError } from '../base/errors.ts'
import { execFile, spawn } from 'node:child_process'
import { accessSync, constants, statSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { delimiter, join } from 'node:path'

export interface AsteriskTarget {
  bin: string
  confDir: string
}

export const confArgs = (t: AsteriskTarget) => ['-C', join(t.confDir, 'asterisk.conf')]

const isExecutableFile = (path: string) => {
  try {
    accessSync(path, constants.X_OK)
    return statSync(path).isFile()
  } catch {
    return false
  }
}

/**
 * Why `bin` can't be run, or undefined when it can: a path must be an executable file, a bare
 * name must be one in a PATH directory. A binary that isn't there won't appear by restarting it.
 */
export function notExecutable(bin: string, path = process.env.PATH ?? ''): string | undefined {
  if (bin.includes('/')) {
    let isFile: boolean
    try {
      isFile = statSync(bin).isFile()
    } catch {
      return `\`${bin}\` does not exist`
    }
    if (!isFile) return `\`${bin}\` is not a file`
    return isExecutableFile(bin) ? undefined : `\`${bin}\` is not executable`
  }
  const dirs = path.split(delimiter).filter(Boolean)
  return dirs.some((d) => isExecutableFile(join(d, bin)))
    ? undefined
    : `\`${bin}\` is in no directory of PATH (${dirs.join(delimiter) || 'empty'})`
}

/** Run one CLI command in the running Asterisk and return its output. */
export function rx(t: AsteriskTarget, command: string, timeoutMs = 10_000, signal?: AbortSignal): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(
      t.bin,
      [...confArgs(t), '-rx', command],
      { timeout: timeoutMs, maxBuffer: 64 * 2 ** 20, ...(signal ? { signal } : {}) },
      (err, stdout, stderr) => {
        // Asterisk's remote console exits 0 even when it could not connect; its message says so.
        if (err || /Unable to connect to remote asterisk/.test(stdout)) {
          const timedOut = err?.killed && err.signal === 'SIGTERM'
          const detail = timedOut
            ? `no answer within ${timeoutMs} ms`
            : (stdout || stderr).trim() || err?.message || 'failed'
          reject(
            new ProcessError(`asterisk -rx "${command}"`, detail, {
              code: typeof err?.code === 'number' ? err.code : undefined,
              signal: err?.signal,
              stderr,
            }),
          )
        } else resolve(stdout)
      },
    )
  })
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
export function spawnAsterisk(
  t: AsteriskTarget,
  opts: { user?: string | undefined; onLine: (line: string, stream: 'stdout' | 'stderr') => void },
): Child {
  const drop = opts.user ? ['-U', opts.user, '-G', opts.user] : []
  const sub = spawn(t.bin, ['-f', ...confArgs(t), ...drop], { stdio: ['ignore', 'pipe', 'pipe'] })
  createInterface({ input: sub.stdout }).on('line', (l) => opts.onLine(l, 'stdout'))
  createInterface({ input: sub.stderr }).on('line', (l) => opts.onLine(l, 'stderr'))
  const exited = new Promise<Exit>((resolve) => {
    // A binary that can't be started emits 'error' and no 'exit'; report it as a failed start.
    sub.once('error', (err) => {
      opts.onLine(`cannot start ${t.bin}: ${err.message}`, 'stderr')
      resolve({ code: 127, signal: null })
    })
    sub.once('exit', (code, signal) => resolve({ code, signal }))
  })
  // If run itself dies, Asterisk must not live on unsupervised (outside a container nothing else
  // would stop it).
  const killOnExit = () => sub.kill('SIGKILL')
  process.once('exit', killOnExit)
  void exited.then(() => process.off('exit', killOnExit))
  return {
    pid: sub.pid,
    exited,
    kill: (signal = 'SIGTERM') => void sub.kill(signal),
  }
}

/**
 * Resolves once Asterisk says it is fully booted. Until its control socket exists the remote
 * console can't connect, so connecting is retried. `gone` (Asterisk exited) ends the wait and the
 * remote console in flight: once this settles, no process of it is left.
 */
export async function waitFullyBooted(t: AsteriskTarget, gone: AbortSignal, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let last = ''
  while (!gone.aborted) {
    try {
      await rx(t, 'core waitfullybooted', Math.max(1000, deadline - Date.now()), gone)
      return
    } catch (err) {
      last = errorMessage(err)
    }
    if (Date.now() > deadline) throw new Error(`Asterisk did not finish booting within ${timeoutMs} ms: ${last}`)
    await new Promise((r) => setTimeout(r, 100))
  }
  throw new Error('Asterisk exited while booting')
}
