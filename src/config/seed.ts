// Every start: bring the volume's config files to the image's shipped defaults the way dpkg treats
// conffiles. The manifest on the volume remembers, per file, which shipped version it came from and
// the content privatedial last put there (the shipped copy, or that with the environment applied).
// A file still as privatedial left it takes the new shipped version; a file the user changed is kept
// and the new version goes beside it as <name>.new; a missing file is seeded. Nothing a user wrote
// is replaced. Also makes the directories certificates go to.
import { createHash } from 'node:crypto'
import { mkdir, readdir, readFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { writeFileAtomic } from '../base/atomic-write.ts'
import type { Logger } from '../base/log.ts'

/** The suite as shipped; in the image the app and rootfs/ sit together as in the repository. */
export const DEFAULTS_DIR = fileURLToPath(new URL('../../rootfs/etc/asterisk', import.meta.url))

/** In the config dir, beside the files it describes; Asterisk reads only the *.conf it is told to. */
export const MANIFEST = '.privatedial-shipped.json'

export interface ManifestEntry {
  /** sha256 of the shipped version the file came from, or was last offered beside it as .new. */
  shipped: string
  /** sha256 of the content privatedial last wrote to it; absent when the user's own content came first. */
  ours?: string
}
export type Manifest = Record<string, ManifestEntry>

/** seed: copy it in; update: replace it; offer: put the new version beside it; keep: leave it, with this entry. */
export type Action = { kind: 'seed' | 'update' | 'offer' } | { kind: 'keep'; entry: ManifestEntry }

export const sha256 = (data: string | Uint8Array) => createHash('sha256').update(data).digest('hex')

/**
 * What to do with one file, given the hash of the new shipped version, the volume's file (undefined:
 * missing) and its manifest entry (undefined: a volume from before the manifest, or a new file).
 * Pure: the caller does the writing.
 */
export function decide(shipped: string, current: string | undefined, entry: ManifestEntry | undefined): Action {
  if (current === undefined) return { kind: 'seed' }
  if (current === shipped) return { kind: 'keep', entry: { shipped, ours: shipped } }
  // Without an entry nobody knows where the file came from: it is the user's.
  if (entry?.ours === current) return entry.shipped === shipped ? { kind: 'keep', entry } : { kind: 'update' }
  if (entry?.shipped === shipped) return { kind: 'keep', entry }
  return { kind: 'offer' }
}

export async function readManifest(confDir: string): Promise<Manifest> {
  let text: string
  try {
    text = await readFile(join(confDir, MANIFEST), 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {}
    throw err
  }
  try {
    return JSON.parse(text) as Manifest
  } catch (err) {
    throw new Error(`${join(confDir, MANIFEST)}: expected JSON written by privatedial, got unparsable text`, {
      cause: err,
    })
  }
}

function canonical(manifest: Manifest): string {
  const sorted = Object.fromEntries(Object.entries(manifest).sort(([a], [b]) => a.localeCompare(b)))
  return JSON.stringify(sorted, null, 2) + '\n'
}

/**
 * After privatedial rewrites a config file (apply): a file that was still ours stays ours, so a
 * later image may update it; a file the user had changed stays theirs.
 */
export async function recordRewrite(confDir: string, file: string, before: string, after: string): Promise<void> {
  const manifest = await readManifest(confDir)
  const entry = manifest[file]
  if (!entry || entry.ours !== sha256(before)) return
  manifest[file] = { ...entry, ours: sha256(after) }
  await writeFileAtomic(join(confDir, MANIFEST), canonical(manifest))
}

export interface SeedOptions {
  from?: string
  confDir: string
  /** Files whose parent directories must exist (certificate and key). */
  certFiles?: string[]
  log: Logger
}

export interface SeedResult {
  /** Missing files copied in. */
  seeded: string[]
  /** Files privatedial had left as they were, replaced by a new shipped version. */
  updated: string[]
  /** Files the user changed, kept, with the new shipped version beside them as <name>.new. */
  offered: string[]
}

export async function seed(opts: SeedOptions): Promise<SeedResult> {
  const { confDir, log } = opts
  const from = opts.from ?? DEFAULTS_DIR
  await mkdir(confDir, { recursive: true })
  const before = await readManifest(confDir)
  const manifest: Manifest = {}
  const result: SeedResult = { seeded: [], updated: [], offered: [] }
  const offer = async (name: string, file: string, content: Buffer) => {
    await writeFileAtomic(`${file}.new`, content)
    result.offered.push(name)
    log.warn(
      `kept your ${name}; the image ships a new version of it, put beside it as ${name}.new: compare with \`diff -u ${file} ${file}.new\` and merge what you want`,
      { file },
    )
  }
  const names = (await readdir(from, { withFileTypes: true })).filter((e) => e.isFile()).map((e) => e.name)
  for (const name of names.sort()) {
    const file = join(confDir, name)
    const content = await readFile(join(from, name))
    const shipped = sha256(content)
    const current = await readFile(file).then(sha256, (err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined
      throw err
    })
    const action = decide(shipped, current, before[name])
    manifest[name] = { shipped, ours: shipped }
    if (action.kind === 'keep') manifest[name] = action.entry
    else if (action.kind === 'seed') {
      await writeFileAtomic(file, content)
      result.seeded.push(name)
    } else if (action.kind === 'update') {
      try {
        await writeFileAtomic(file, content)
        result.updated.push(name)
        log.info(`updated ${name} to the image's new version: you had not changed it`, { file })
      } catch (err) {
        // A file bind-mounted on its own can't be renamed over; the new version goes beside it.
        log.warn(`can't replace ${name}: ${(err as Error).message}`, { file })
        await offer(name, file, content)
        manifest[name] = { shipped, ours: current }
      }
    } else {
      await offer(name, file, content)
      const ours = before[name]?.ours
      manifest[name] = ours ? { shipped, ours } : { shipped }
    }
  }
  // Files no longer shipped drop out of the manifest; the files themselves stay.
  if (canonical(manifest) !== canonical(before)) await writeFileAtomic(join(confDir, MANIFEST), canonical(manifest))
  if (result.seeded.length)
    log.info(`seeded ${result.seeded.length} default file(s) into ${confDir}`, { files: result.seeded.join(',') })
  if (!result.seeded.length && !result.updated.length && !result.offered.length)
    log.debug(`every default file is present and current in ${confDir}; nothing seeded`)
  for (const f of opts.certFiles ?? []) {
    const made = await mkdir(dirname(f), { recursive: true, mode: 0o755 })
    if (made) log.info(`created certificate directory ${dirname(f)}`)
  }
  return result
}
