// Watches config files for changes and reports settled, real changes in batches. Editors and bind
// mounts replace files by rename, so the directory is watched, not the file.
import { errorMessage } from './errors.ts'
import { createHash } from 'node:crypto'
import { readFile } from 'node:fs/promises'
import { dirname, resolve } from 'node:path'
import { watch as chokidar } from 'chokidar'
import type { Logger } from './log.ts'

export interface WatchOptions {
  files: string[]
  debounceMs?: number
  log: Logger
  /** Called with the files whose content changed; calls never overlap. */
  onChange: (files: string[]) => Promise<void>
}

export interface Watcher {
  ready: Promise<void>
  close(): Promise<void>
  /** Resolves when no change is pending or being handled (for tests and shutdown). */
  idle(): Promise<void>
}

async function digest(file: string): Promise<string | undefined> {
  try {
    return createHash('sha256')
      .update(await readFile(file))
      .digest('hex')
  } catch {
    return undefined
  }
}

export function watchFiles(opts: WatchOptions): Watcher {
  const files = new Set(opts.files.map((f) => resolve(f)))
  const hashes = new Map<string, string | undefined>()
  const pending = new Set<string>()
  let timer: NodeJS.Timeout | undefined
  let running: Promise<void> | undefined
  let idleWaiters: (() => void)[] = []

  const settle = () => {
    if (!timer && !running && !pending.size) {
      for (const w of idleWaiters) w()
      idleWaiters = []
    }
  }

  // Bursts (an editor's write + rename, several saves) merge into one batch; a change that
  // arrives while a batch is handled waits for the next one.
  const flush = async () => {
    timer = undefined
    if (running) return
    const batch = [...pending]
    pending.clear()
    const changed: string[] = []
    for (const f of batch) {
      const h = await digest(f)
      if (h !== hashes.get(f)) {
        hashes.set(f, h)
        changed.push(f)
      }
    }
    if (changed.length) {
      running = opts
        .onChange(changed)
        .catch((err: Error) => opts.log.error(`handling a change to ${changed.join(', ')} failed: ${err.message}`))
      await running
      running = undefined
    } else if (batch.length) opts.log.debug(`file event with unchanged content: ${batch.join(', ')}`)
    if (pending.size) schedule()
    settle()
  }
  const schedule = () => {
    clearTimeout(timer)
    timer = setTimeout(() => void flush(), opts.debounceMs ?? 250)
  }

  const dirs = [...new Set([...files].map((f) => dirname(f)))]
  const w = chokidar(dirs, { ignoreInitial: true, depth: 0 })
  w.on('all', (event, path) => {
    const f = resolve(path)
    if (!files.has(f)) return
    opts.log.debug(`file event: ${f}`, { event })
    pending.add(f)
    schedule()
  })
  w.on('error', (err) => opts.log.error(`watching ${dirs.join(', ')}: ${errorMessage(err)}`))
  let closed = false
  const ready = (async () => {
    await new Promise<void>((r) => w.once('ready', () => r()))
    for (const f of files) hashes.set(f, await digest(f))
    // A stop during start-up closes the watcher before it is ready: don't claim it watches.
    if (!closed) opts.log.info(`watching ${[...files].join(', ')} for changes`)
  })()

  return {
    ready,
    async close() {
      closed = true
      clearTimeout(timer)
      timer = undefined
      await w.close()
      await running
    },
    idle: () =>
      new Promise<void>((r) => {
        idleWaiters.push(r)
        settle()
      }),
  }
}
