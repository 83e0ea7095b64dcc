// minivm-send's spool: voicemail e-mails the server did not take yet, one file each, named so
// they sort by arrival; beside them failed/, for the ones a server refused for good.
import { randomBytes } from 'node:crypto'
import { mkdir, readdir, rename } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { writeFileAtomic } from '../base/atomic-write.ts'
import { settingByName } from '../config/settings.ts'

export const FAILED_DIR = 'failed'
const SUFFIX = '.eml'

export type Env = Record<string, string | undefined>
export const spoolDirOf = (env: Env): string => env.MINIVM_SPOOL_DIR || settingByName('MINIVM_SPOOL_DIR').value!

/** Keeps the message as read, Bcc included, so a later flush sends exactly what would have been sent. */
export async function spoolMessage(dir: string, input: Buffer, now: Date): Promise<string> {
  await mkdir(dir, { recursive: true, mode: 0o700 })
  // Names sort by arrival, so a flush sends in the order the voicemails were left.
  const file = join(dir, `${now.toISOString().replace(/[-:]/g, '')}-${randomBytes(4).toString('hex')}${SUFFIX}`)
  await writeFileAtomic(file, input, { mode: 0o600 })
  return file
}

/** The messages in `dir`, oldest first; none when it does not exist. */
export async function messagesIn(dir: string): Promise<string[]> {
  const names = await readdir(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return []
    throw err
  })
  return names
    .filter((n) => n.endsWith(SUFFIX) && !n.startsWith('.'))
    .sort()
    .map((n) => join(dir, n))
}

/** Moves a queued message to failed/ under the same name; it is never sent from there. */
export async function moveToFailed(spoolDir: string, file: string): Promise<string> {
  const dir = join(spoolDir, FAILED_DIR)
  await mkdir(dir, { recursive: true, mode: 0o700 })
  const to = join(dir, basename(file))
  await rename(file, to)
  return to
}

/** Writes a message straight into failed/, for one refused on its first try. */
export async function failMessage(spoolDir: string, input: Buffer, now: Date): Promise<string> {
  return spoolMessage(join(spoolDir, FAILED_DIR), input, now)
}
