import { chown, open, rename, rm, stat } from 'node:fs/promises'
import { basename, dirname, join } from 'node:path'
import { randomBytes } from 'node:crypto'

export interface AtomicWriteOptions {
  /** Mode for a new file; an existing file keeps its own mode unless `forceMode` is set. */
  mode?: number
  forceMode?: boolean
}

/**
 * Write a file so readers see the old or the new content, never a mix: temp file in the same
 * directory, fsync, rename. An existing file's mode and owner are kept, so a user's bind-mounted
 * file stays theirs.
 */
export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  opts: AtomicWriteOptions = {},
): Promise<void> {
  const old = await stat(path).catch(() => undefined)
  const mode = opts.forceMode || !old ? (opts.mode ?? 0o644) : old.mode & 0o7777
  const tmp = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`)
  const fh = await open(tmp, 'wx', mode)
  try {
    await fh.writeFile(data)
    await fh.chmod(mode) // open() applies the umask; the mode we mean must survive it
    if (old && (old.uid !== process.getuid?.() || old.gid !== process.getgid?.())) {
      await chown(tmp, old.uid, old.gid).catch(() => undefined)
    }
    await fh.sync()
  } catch (err) {
    await fh.close()
    await rm(tmp, { force: true })
    throw err
  }
  await fh.close()
  try {
    await rename(tmp, path)
  } catch (err) {
    await rm(tmp, { force: true })
    throw err
  }
}
