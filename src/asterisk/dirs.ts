// What Asterisk needs of the filesystem as the user it runs as. The directories it writes to,
// from asterisk.conf [directories], made and handed to that user: a fresh volume has none of them,
// and a container has no systemd to make /run/asterisk, without which Asterisk has no control
// socket and `asterisk -rx` can't reach it. And read access to its config files.
import { chown, mkdir, readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { getValues } from '../config/conf.ts'
import { readConf } from '../config/files.ts'
import type { Logger } from '../base/log.ts'

/** The ones Asterisk writes to; modules, sounds and the config are only read. */
export const WRITABLE = ['astrundir', 'astspooldir', 'astlogdir', 'astvarlibdir', 'astdbdir', 'astcachedir'] as const

export async function prepareAsteriskDirs(
  confDir: string,
  owner: { uid: number; gid: number } | undefined,
  log: Logger,
): Promise<string[]> {
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

/** The user Asterisk drops to, with every group it is in. */
export interface Account {
  name: string
  uid: number
  gid: number
  groups: readonly number[]
}

/** Whether a non-root `who` gets permission `bit` (4 read, 1 search) on a file of this mode and owner. */
export function permits(
  st: { mode: number; uid: number; gid: number },
  who: Pick<Account, 'uid' | 'groups'>,
  bit: 4 | 1,
): boolean {
  const shift = st.uid === who.uid ? 6 : who.groups.includes(st.gid) ? 3 : 0
  return ((st.mode >> shift) & bit) !== 0
}

/**
 * Config files Asterisk can't read once it has dropped root: its modules load their files after
 * it did, and one it can't open is skipped with a log line, so a pjsip_endpoint.conf kept 0600 by
 * its owner on the host leaves the PBX without users. websms.conf is ours, read as root.
 */
export async function unreadableByAsterisk(confDir: string, who: Account): Promise<string[]> {
  const whom = `user ${who.name} (uid ${who.uid}, gid ${who.gid})`
  const describe = (st: { mode: number; uid: number; gid: number }) =>
    `mode ${(st.mode & 0o777).toString(8).padStart(4, '0')}, owner ${st.uid}:${st.gid}`
  const dir = await stat(confDir)
  if (!permits(dir, who, 1))
    return [
      `Asterisk runs as ${whom} and can't enter ${confDir} (${describe(dir)}); make it searchable for that user (chmod o+x, or its group), or set ASTERISK_USER=root`,
    ]
  const problems: string[] = []
  for (const name of (await readdir(confDir)).filter((f) => f.endsWith('.conf') && f !== 'websms.conf').sort()) {
    const st = await stat(join(confDir, name)).catch(() => undefined)
    if (st?.isFile() && !permits(st, who, 4))
      problems.push(
        `Asterisk runs as ${whom} and can't read ${join(confDir, name)} (${describe(st)}); make it readable for that user: chgrp ${who.gid} and chmod g+r (on the host, for a bind mount), or chmod o+r, or set ASTERISK_USER=root`,
      )
  }
  return problems
}
