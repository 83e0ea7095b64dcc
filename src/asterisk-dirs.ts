// The directories Asterisk writes to, from asterisk.conf [directories], made and handed to the
// user Asterisk runs as. A fresh volume has none of them, and a container has no systemd to make
// /run/asterisk: without it Asterisk has no control socket and `asterisk -rx` can't reach it.
import { chown, mkdir, stat } from 'node:fs/promises'
import { getValues } from './conf.ts'
import { readConf } from './conf-files.ts'
import type { Logger } from './log.ts'

/** The ones Asterisk writes to; modules, sounds and the config are only read. */
export const WRITABLE = ['astrundir', 'astspooldir', 'astlogdir', 'astvarlibdir', 'astdbdir', 'astcachedir'] as const

export async function prepareAsteriskDirs(confDir: string, owner: { uid: number; gid: number } | undefined, log: Logger): Promise<string[]> {
  const doc = await readConf(confDir, 'asterisk.conf')
  const dirs = doc ? WRITABLE.flatMap((k) => getValues(doc, 'directories', k).slice(-1)) : []
  for (const dir of new Set(dirs)) {
    const made = await mkdir(dir, { recursive: true, mode: 0o750 })
    if (made) log.info(`created ${dir}`)
    if (!owner) continue
    const st = await stat(dir)
    if (st.uid !== owner.uid || st.gid !== owner.gid) {
      await chown(dir, owner.uid, owner.gid)
      log.info(`gave ${dir} to the Asterisk user`, { uid: owner.uid })
    }
  }
  return [...new Set(dirs)]
}
