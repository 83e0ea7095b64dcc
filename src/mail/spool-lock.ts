// One flush of a spool at a time: run's timer and a manual `minivm-send --flush` must not send a
// message twice. The lock is a file in the spool, which lives on a volume and so outlives
// containers: a PID alone names a different process in the next container (run gets the same low
// PID there), so the file also records the boot and the process's start time, and the holder
// keeps touching it, so a lock nobody touches for STALE_AFTER_MS is taken over whatever it says.
import { randomBytes } from 'node:crypto'
import { link, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises'
import { join } from 'node:path'

export const LOCK_FILE = '.flush.lock'
/** How often the holder touches its lock. */
const REFRESH_MS = 60_000
/** A lock untouched this long has no live holder, or one that is stuck. */
export const STALE_AFTER_MS = 10 * 60_000

/** Who holds a lock: enough to tell it from any other process, here or in an earlier container. */
export interface Holder {
  pid: number
  /** /proc/sys/kernel/random/boot_id: a reboot makes every recorded PID meaningless. */
  boot?: string
  /** Field 22 of /proc/PID/stat, clock ticks after boot: a reused PID has a later one. */
  start?: string
}

export type SpoolLock = { release: () => Promise<void> } | { busy: Holder }

const readText = (file: string): Promise<string | undefined> => readFile(file, 'utf8').catch(() => undefined)

async function startTime(pid: number): Promise<string | undefined> {
  const stat = await readText(`/proc/${pid}/stat`)
  // The command name in parentheses may hold spaces and parentheses itself; fields follow the last ')'.
  return stat?.slice(stat.lastIndexOf(')') + 2).split(' ')[19]
}

async function identity(pid: number): Promise<Holder> {
  const [boot, start] = await Promise.all([readText('/proc/sys/kernel/random/boot_id'), startTime(pid)])
  return { pid, ...(boot ? { boot: boot.trim() } : {}), ...(start ? { start } : {}) }
}

/** The holder a lock file names; a bare PID is what earlier versions wrote. */
export function parseHolder(text: string): Holder | undefined {
  const bare = /^\s*(\d+)\s*$/.exec(text)
  if (bare) return { pid: Number(bare[1]) }
  try {
    const h = JSON.parse(text) as Partial<Holder>
    return Number.isInteger(h.pid) && h.pid! > 0 ? (h as Holder) : undefined
  } catch {
    return undefined
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** Locks this process holds: its own PID in a lock file is stale unless it is one of these. */
const held = new Set<string>()

/** Why the holder named in a lock is gone, or undefined when it may still be flushing. */
async function staleness(file: string, holder: Holder | undefined, now: number): Promise<string | undefined> {
  if (!holder) return 'unreadable'
  if (holder.pid === process.pid) return held.has(file) ? undefined : 'left by this process'
  if (!isAlive(holder.pid)) return 'holder is gone'
  const live = await identity(holder.pid)
  if (holder.boot && live.boot && holder.boot !== live.boot) return 'left before a reboot'
  if (holder.start && live.start && holder.start !== live.start) return 'PID now belongs to another process'
  const mtime = await stat(file).then(
    (s) => s.mtimeMs,
    () => now,
  )
  if (now - mtime > STALE_AFTER_MS) return `untouched for ${Math.round((now - mtime) / 1000)} s`
  return undefined
}

/**
 * Takes the spool's lock, or names the live holder. A stale lock is taken over and `onStale` says
 * why; the messages of a flush that died are still in the spool.
 */
export async function lockSpool(
  dir: string,
  opts: { onStale?: (holder: string, why: string) => void; now?: () => number } = {},
): Promise<SpoolLock> {
  const file = join(dir, LOCK_FILE)
  const me = JSON.stringify(await identity(process.pid))
  // Written whole, then linked into place: a lock file is never seen empty, which would read as stale.
  const tmp = join(dir, `.flush.lock.${randomBytes(4).toString('hex')}`)
  await writeFile(tmp, me, { mode: 0o600 })
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        await link(tmp, file)
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 2) throw err
        const text = (await readText(file)) ?? ''
        const holder = parseHolder(text)
        const why = await staleness(file, holder, (opts.now ?? Date.now)())
        if (!why) return { busy: holder! }
        opts.onStale?.(text.trim(), why)
        await rm(file, { force: true })
        continue
      }
      held.add(file)
      const refresh = setInterval(() => {
        const t = new Date()
        // Gone means taken over while we were stuck; staleness then was right, and there is nothing to touch.
        utimes(file, t, t).catch(() => undefined)
      }, REFRESH_MS)
      refresh.unref()
      return {
        release: async () => {
          clearInterval(refresh)
          held.delete(file)
          // Taken over while we were stuck: the lock is the new holder's now.
          if ((await readText(file)) === me) await rm(file, { force: true })
        },
      }
    }
  } finally {
    await rm(tmp, { force: true })
  }
}
