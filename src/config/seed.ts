// First run on an empty or partial volume: copy the image's default config files in, never over
// a file that is there (the user's edits win), and make the directories certificates go to.
import { constants } from 'node:fs'
import { copyFile, mkdir, readdir } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Logger } from '../base/log.ts'

/** The suite as shipped; in the image the app and rootfs/ sit together as in the repository. */
export const DEFAULTS_DIR = fileURLToPath(new URL('../../rootfs/etc/asterisk', import.meta.url))

export interface SeedOptions {
  from?: string
  confDir: string
  /** Files whose parent directories must exist (certificate and key). */
  certFiles?: string[]
  log: Logger
}

export async function seed(opts: SeedOptions): Promise<string[]> {
  const from = opts.from ?? DEFAULTS_DIR
  await mkdir(opts.confDir, { recursive: true })
  // Every start asks; usually all files are there, and one listing answers for all of them.
  const present = new Set(await readdir(opts.confDir))
  const seeded: string[] = []
  for (const entry of await readdir(from, { withFileTypes: true })) {
    if (!entry.isFile() || present.has(entry.name)) continue
    try {
      await copyFile(join(from, entry.name), join(opts.confDir, entry.name), constants.COPYFILE_EXCL)
      seeded.push(entry.name)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    }
  }
  if (seeded.length)
    opts.log.info(`seeded ${seeded.length} default file(s) into ${opts.confDir}`, { files: seeded.join(',') })
  else opts.log.debug(`every default file is present in ${opts.confDir}; nothing seeded`)
  for (const f of opts.certFiles ?? []) {
    const made = await mkdir(dirname(f), { recursive: true, mode: 0o755 })
    if (made) opts.log.info(`created certificate directory ${dirname(f)}`)
  }
  return seeded
}
