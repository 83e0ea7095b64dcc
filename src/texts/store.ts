// Texts for users' phones, kept on disk until every phone that should have one has it. Each text is
// one file, written atomically (and fsynced) before the sender's hand-off is acknowledged, never
// changed after. Which phone (contact URI) got which text is a journal of appended lines, fsynced
// in batches before a delivery counts; a text's file is removed when the text is done with, and
// the journal is rewritten without the lines of texts that are gone when the store is opened.
// A crash loses nothing acknowledged; a delivery whose journal line was not yet on disk goes out
// again after a restart.
import { randomBytes } from 'node:crypto'
import { mkdir, open, readdir, readFile, rename, rm, unlink, type FileHandle } from 'node:fs/promises'
import { join } from 'node:path'
import { writeFileAtomic } from '../base/atomic-write.ts'
import type { Logger } from '../base/log.ts'

export interface NewText {
  /** The recipient: a user's endpoint name. */
  user: string
  /** The number texted. */
  to: string
  /** The From the phones are shown (display name and URI), as the dial plan set it. */
  from: string
  /** The sender's endpoint, when a local user sent it: whom a notice goes to. */
  fromUser?: string
  /** The body's bytes, as received. */
  body: Buffer
  /** When the PBX took the text (ms since the epoch). */
  time: number
}

export interface StoredText extends NewText {
  /** Sorts by arrival: the order texts are delivered in. */
  id: string
}

interface TextFile {
  id: string
  user: string
  to: string
  from: string
  fromUser?: string
  body: string
  time: number
}

export interface TextState {
  text: StoredText
  /** Contact URIs that have it, with when. */
  deliveredTo: Map<string, number>
}

export interface Store {
  dir: string
  /** Resolves once the text is on disk. */
  add(text: NewText): Promise<StoredText>
  /** The user's texts, oldest first. */
  texts(user: string): TextState[]
  users(): string[]
  get(id: string): TextState | undefined
  /** Resolves once the journal says so on disk. */
  delivered(id: string, contact: string, at: number): Promise<void>
  /** A delivery that did not happen after all (the phone turned out to be unreachable). */
  undelivered(id: string, contact: string): Promise<void>
  remove(id: string): Promise<void>
  size(): number
  close(): Promise<void>
}

const SUFFIX = '.json'
const JOURNAL = 'delivered.log'

function fromFile(f: TextFile): StoredText {
  return { ...f, body: Buffer.from(f.body, 'base64') }
}

/** A journal line: `d <id> <ms> <contact>` or `u <id> <contact>`. Contact URIs hold no spaces. */
export function journalLine(kind: 'd' | 'u', id: string, contact: string, at?: number): string {
  if (/\s/.test(contact)) throw new RangeError(`a contact URI must hold no white space, got ${JSON.stringify(contact)}`)
  return kind === 'd' ? `d ${id} ${at} ${contact}\n` : `u ${id} ${contact}\n`
}

/** Replays journal lines onto the texts' delivery maps; lines of unknown texts are skipped. */
export function replayJournal(text: string, states: Map<string, TextState>): number {
  let live = 0
  for (const line of text.split('\n')) {
    const [kind, id = '', a = '', b = ''] = line.split(' ')
    const state = states.get(id)
    if (!state) continue
    if (kind === 'd' && b) {
      state.deliveredTo.set(b, Number(a))
      live++
    } else if (kind === 'u' && a) {
      state.deliveredTo.delete(a)
      live++
    }
  }
  return live
}

/** Reads what a store dir holds, without changing it: for `privatedial texts`. */
export async function readStoreDir(dir: string): Promise<TextState[]> {
  const names = (await readdir(dir).catch(() => [] as string[])).filter((n) => n.endsWith(SUFFIX)).sort()
  const states = new Map<string, TextState>()
  for (const name of names) {
    try {
      const text = fromFile(JSON.parse(await readFile(join(dir, name), 'utf8')) as TextFile)
      states.set(text.id, { text, deliveredTo: new Map() })
    } catch {
      // A file being written or unreadable: the service reports it when it opens the store.
    }
  }
  replayJournal(await readFile(join(dir, JOURNAL), 'utf8').catch(() => ''), states)
  return [...states.values()]
}

export async function openStore(opts: { dir: string; log: Logger }): Promise<Store> {
  const { dir, log } = opts
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const states = new Map<string, TextState>()
  const byUser = new Map<string, TextState[]>()
  const origin = randomBytes(3).toString('hex')
  let seq = 0

  for (const name of (await readdir(dir)).sort()) {
    const path = join(dir, name)
    // writeFileAtomic's temp files: texts whose hand-off was never acknowledged.
    if (name.startsWith('.') && name.endsWith('.tmp')) {
      await rm(path, { force: true })
      continue
    }
    if (!name.endsWith(SUFFIX)) continue
    try {
      const f = JSON.parse(await readFile(path, 'utf8')) as TextFile
      if (`${f.id}${SUFFIX}` !== name || typeof f.user !== 'string' || typeof f.body !== 'string')
        throw new Error('not a stored text')
      states.set(f.id, { text: fromFile(f), deliveredTo: new Map() })
    } catch (err) {
      log.error(`stored text ${path} can't be read (${(err as Error).message}); moved aside as ${name}.bad`)
      await rename(path, `${path}.bad`).catch(() => undefined)
    }
  }
  const journalPath = join(dir, JOURNAL)
  const old = await readFile(journalPath, 'utf8').catch(() => '')
  replayJournal(old, states)
  // Start the journal afresh with what still matters: lines of texts that are gone would pile up.
  let compact = ''
  for (const s of states.values())
    for (const [contact, at] of s.deliveredTo) compact += journalLine('d', s.text.id, contact, at)
  if (compact !== old) await writeFileAtomic(journalPath, compact, { mode: 0o600 })
  const journal: FileHandle = await open(journalPath, 'a', 0o600)
  for (const s of states.values()) {
    const list = byUser.get(s.text.user) ?? []
    list.push(s)
    byUser.set(s.text.user, list)
  }
  if (states.size) log.info(`${states.size} stored text(s) waiting`, { dir, users: byUser.size })

  // Group commit: lines written while a sync runs share the next sync.
  let buffered = ''
  let waiters: Array<{ resolve: () => void; reject: (e: Error) => void }> = []
  let syncing: Promise<void> | undefined
  const flush = async (): Promise<void> => {
    while (buffered) {
      const lines = buffered
      const batch = waiters
      buffered = ''
      waiters = []
      try {
        await journal.write(lines)
        await journal.datasync()
        for (const w of batch) w.resolve()
      } catch (err) {
        for (const w of batch) w.reject(err as Error)
      }
    }
    syncing = undefined
  }
  const append = (line: string) =>
    new Promise<void>((resolve, reject) => {
      buffered += line
      waiters.push({ resolve, reject })
      syncing ??= flush()
    })

  return {
    dir,
    async add(t) {
      const id = `${new Date(t.time).toISOString().replace(/[-:.]/g, '')}-${String(seq++ % 1e6).padStart(6, '0')}-${origin}`
      const text: StoredText = { ...t, id }
      const file: TextFile = {
        id,
        user: t.user,
        to: t.to,
        from: t.from,
        ...(t.fromUser ? { fromUser: t.fromUser } : {}),
        body: t.body.toString('base64'),
        time: t.time,
      }
      await writeFileAtomic(join(dir, `${id}${SUFFIX}`), JSON.stringify(file), { mode: 0o600 })
      const state = { text, deliveredTo: new Map<string, number>() }
      states.set(id, state)
      const list = byUser.get(t.user) ?? []
      list.push(state)
      byUser.set(t.user, list)
      return text
    },
    texts: (user) => byUser.get(user) ?? [],
    users: () => [...byUser.keys()],
    get: (id) => states.get(id),
    async delivered(id, contact, at) {
      const s = states.get(id)
      if (!s) return
      s.deliveredTo.set(contact, at)
      await append(journalLine('d', id, contact, at))
    },
    async undelivered(id, contact) {
      const s = states.get(id)
      if (!s?.deliveredTo.delete(contact)) return
      await append(journalLine('u', id, contact))
    },
    async remove(id) {
      const s = states.get(id)
      if (!s) return
      states.delete(id)
      const list = byUser.get(s.text.user) ?? []
      list.splice(list.indexOf(s), 1)
      if (!list.length) byUser.delete(s.text.user)
      await unlink(join(dir, `${id}${SUFFIX}`)).catch((err: NodeJS.ErrnoException) => {
        if (err.code !== 'ENOENT') log.error(`removing the stored text ${id} failed: ${err.message}`)
      })
      // Nothing left that a journal line could be about: start it afresh rather than let it grow.
      if (!states.size && !buffered) {
        await syncing
        if (!states.size && !buffered) await journal.truncate(0)
      }
    },
    size: () => states.size,
    async close() {
      await syncing
      await journal.close()
    },
  }
}
