// Texts on their way, kept on disk until delivered: one file per text, written atomically before
// the text is acknowledged, removed only once it was delivered or given up. A crash or restart loses
// nothing; at worst a text whose delivery was not yet recorded goes out twice.
//
// Items wait in lanes (Asterisk, each ITSP). A lane delivers oldest first, one at a time, and waits
// while its head can't be delivered yet, so texts arrive in the order they came.
import { errorMessage } from '../base/errors.ts'
import { doublingDelay } from '../base/backoff.ts'
import { randomBytes } from 'node:crypto'
import { mkdir, readdir, readFile, rename, rm, unlink } from 'node:fs/promises'
import { join } from 'node:path'
import { writeFileAtomic } from '../base/atomic-write.ts'
import type { Logger } from '../base/log.ts'

export interface QueueItem<T> {
  id: string
  lane: string
  createdAt: number
  attempts: number
  /** Not tried again before this time (ms since the epoch). */
  notBefore: number
  lastError?: string
  payload: T
}

export type Outcome = { done: true } | { retry: string } | { fail: string }

export interface LanePolicy {
  /** First retry delay; each further one doubles, up to maxMs. */
  baseMs: number
  maxMs: number
  /** Given up once this old. */
  maxAgeMs: number
}

export interface QueueOptions<T> {
  dir: string
  log: Logger
  deliver: (item: QueueItem<T>) => Promise<Outcome>
  policy: (lane: string) => LanePolicy
  /** Told of an item that failed for good or grew too old, before its file is removed. */
  giveUp: (item: QueueItem<T>, reason: string) => Promise<void> | void
  now?: () => number
}

export interface Queue<T> {
  /** Resolves once the item is on disk. */
  add(lane: string, payload: T): Promise<QueueItem<T>>
  /** Try every waiting lane now, e.g. when Asterisk has just come up. */
  flush(): void
  size(): number
  /** Resolves when nothing is queued. */
  idle(): Promise<void>
  /** Stops delivering; items stay on disk for the next open. */
  close(): Promise<void>
}

interface Lane<T> {
  items: QueueItem<T>[]
  running: boolean
  timer?: NodeJS.Timeout
}

const SUFFIX = '.json'

export function retryDelay(policy: LanePolicy, attempts: number): number {
  return doublingDelay(attempts, policy.baseMs, policy.maxMs)
}

export async function openQueue<T>(opts: QueueOptions<T>): Promise<Queue<T>> {
  const { dir, log } = opts
  const now = opts.now ?? Date.now
  const lanes = new Map<string, Lane<T>>()
  const running = new Set<Promise<void>>()
  let idleWaiters: Array<() => void> = []
  let closed = false
  let seq = 0
  // Tells this process's items from another's that arrived in the same millisecond.
  const origin = randomBytes(3).toString('hex')
  const file = (item: QueueItem<T>) => join(dir, `${item.id}${SUFFIX}`)
  const count = () => [...lanes.values()].reduce((n, l) => n + l.items.length, 0)

  const laneOf = (name: string) => {
    let lane = lanes.get(name)
    if (!lane) lanes.set(name, (lane = { items: [], running: false }))
    return lane
  }

  const remove = async (lane: Lane<T>, item: QueueItem<T>) => {
    lane.items.splice(lane.items.indexOf(item), 1)
    await unlink(file(item)).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT')
        log.error(`removing ${file(item)} failed; it may be sent again after a restart: ${err.message}`)
    })
    if (count() === 0) {
      const waiters = idleWaiters
      idleWaiters = []
      for (const w of waiters) w()
    }
  }

  const attempt = async (lane: Lane<T>, item: QueueItem<T>) => {
    let outcome: Outcome
    try {
      outcome = await opts.deliver(item)
    } catch (err) {
      outcome = { retry: errorMessage(err) }
    }
    if ('done' in outcome) return remove(lane, item)
    let reason = 'fail' in outcome ? outcome.fail : outcome.retry
    const policy = opts.policy(item.lane)
    item.attempts++
    const age = now() - item.createdAt
    if ('retry' in outcome && age < policy.maxAgeMs) {
      const delay = retryDelay(policy, item.attempts)
      item.notBefore = now() + delay
      item.lastError = reason
      log.warn(`delivery failed; retrying in ${Math.round(delay / 1000)} s`, {
        lane: item.lane,
        id: item.id,
        attempts: item.attempts,
        reason,
      })
      // A restart resumes from here; should the write fail, the older copy on disk is as good.
      await writeFileAtomic(file(item), JSON.stringify(item), { mode: 0o600 }).catch((err: Error) =>
        log.error(`updating ${file(item)} failed: ${err.message}`),
      )
      return
    }
    if ('retry' in outcome) reason = `${reason}; gave up after ${item.attempts} attempts in ${Math.round(age / 1000)} s`
    try {
      await opts.giveUp(item, reason)
    } catch (err) {
      log.error(`handling the failed item ${item.id} failed: ${errorMessage(err)}`, { lane: item.lane })
    }
    await remove(lane, item)
  }

  const kick = (name: string) => {
    const lane = lanes.get(name)
    if (!lane || lane.running || closed) return
    const head = lane.items[0]
    if (!head) {
      lanes.delete(name)
      return
    }
    const wait = head.notBefore - now()
    if (wait > 0) {
      // Due when the timer fires, whatever the clock says by then (it may have been set back).
      lane.timer ??= setTimeout(() => {
        lane.timer = undefined
        head.notBefore = 0
        kick(name)
      }, wait)
      return
    }
    lane.running = true
    const p = attempt(lane, head).finally(() => {
      lane.running = false
      running.delete(p)
      kick(name)
    })
    running.add(p)
  }

  await mkdir(dir, { recursive: true, mode: 0o700 })
  const loaded: QueueItem<T>[] = []
  for (const name of (await readdir(dir)).sort()) {
    const path = join(dir, name)
    // writeFileAtomic's temp files: writes whose add() never returned, so never acknowledged.
    if (name.startsWith('.') && name.endsWith('.tmp')) {
      await rm(path, { force: true })
      continue
    }
    if (name.startsWith('.') || !name.endsWith(SUFFIX)) continue
    try {
      const item = JSON.parse(await readFile(path, 'utf8')) as QueueItem<T>
      if (typeof item.lane !== 'string' || `${item.id}${SUFFIX}` !== name || typeof item.createdAt !== 'number')
        throw new Error('not a queue item')
      loaded.push({ ...item, attempts: Number(item.attempts) || 0, notBefore: 0 })
    } catch (err) {
      log.error(`queued file ${path} can't be read (${errorMessage(err)}); moved aside as ${name}.bad`)
      await rename(path, `${path}.bad`).catch(() => undefined)
    }
  }
  for (const item of loaded) laneOf(item.lane).items.push(item)
  if (loaded.length) log.info(`resuming ${loaded.length} queued text(s)`, { dir })
  for (const name of lanes.keys()) kick(name)

  return {
    async add(laneName, payload) {
      if (closed) throw new Error('queue is closed')
      const t = now()
      // Names sort by arrival: the order on disk is the order of delivery after a restart.
      const id = `${new Date(t).toISOString().replace(/[-:.]/g, '')}-${String(seq++ % 1e6).padStart(6, '0')}-${origin}`
      const item: QueueItem<T> = { id, lane: laneName, createdAt: t, attempts: 0, notBefore: 0, payload }
      await writeFileAtomic(file(item), JSON.stringify(item), { mode: 0o600 })
      laneOf(laneName).items.push(item)
      kick(laneName)
      return item
    },
    flush() {
      for (const [name, lane] of lanes) {
        clearTimeout(lane.timer)
        lane.timer = undefined
        for (const item of lane.items) item.notBefore = 0
        kick(name)
      }
    },
    size: count,
    idle: () => (count() === 0 ? Promise.resolve() : new Promise<void>((resolve) => idleWaiters.push(resolve))),
    async close() {
      closed = true
      for (const lane of lanes.values()) clearTimeout(lane.timer)
      await Promise.allSettled([...running])
    },
  }
}
