// Bans inside Asterisk, for a container without NET_ADMIN: a PJSIP ACL (res_pjsip_acl) in a file
// pjsip.conf includes, so PJSIP answers a banned address's requests with 403 before looking up
// an endpoint or a password. The packets still reach Asterisk (only nftables keeps them out), but
// a guesser learns nothing and costs no password check. The file is rewritten whole and PJSIP
// reloaded (`module reload res_pjsip.so`, as a certificate renewal does): registrations and calls
// stay up.
import { errorMessage } from '../base/errors.ts'
import { rxReload } from '../asterisk/reload.ts'
import { readdir, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { writeFileAtomic } from '../base/atomic-write.ts'
import { directives, sections, parseConf } from '../config/conf.ts'
import { readConfTree } from '../config/files.ts'
import { checkConfDir } from '../check.ts'
import type { AsteriskView } from '../service.ts'

export const ACL_FILE = 'pjsip_ban.conf'
export const ACL_SECTION = 'privatedial-bans'

/** The ACL file for these banned addresses (none: a file with no ACL, so nothing is refused). */
export function aclConf(addresses: readonly string[]): string {
  const head = [
    "; Written by PrivateDial's ban service when nftables can't be used (see BAN_MODE in README):",
    '; PJSIP refuses these addresses. Edits are overwritten; lift a ban with',
    '; `privatedial bans delete ADDRESS`.',
  ]
  if (!addresses.length) return head.join('\n') + '\n'
  return [...head, '', `[${ACL_SECTION}]`, 'type = acl', ...addresses.map((a) => `deny = ${a}`)].join('\n') + '\n'
}

/** The addresses the ACL file in `confDir` denies now (what an earlier run left). */
export async function aclAddresses(confDir: string): Promise<string[]> {
  const text = await readFile(join(confDir, ACL_FILE), 'utf8').catch(() => '')
  return sections(parseConf(text, ACL_FILE))
    .filter((s) => s.name === ACL_SECTION)
    .flatMap((s) => s.entries.filter((e) => e.key === 'deny').map((e) => e.value))
}

export async function writeAcl(confDir: string, addresses: readonly string[]): Promise<void> {
  await writeFileAtomic(join(confDir, ACL_FILE), aclConf(addresses), { mode: 0o644 })
}

/**
 * Why Asterisk would not apply the ACL file, or undefined when it would: pjsip.conf must include
 * it and modules.conf must load res_pjsip_acl.so. A config dir seeded by an older image has
 * neither.
 */
export async function aclProblem(confDir: string): Promise<string | undefined> {
  const { docs } = await readConfTree(confDir, 'pjsip.conf')
  if (!docs.some((d) => directives(d).some((x) => x.target === ACL_FILE)))
    return `pjsip.conf does not include ${ACL_FILE}; add the line \`#tryinclude ${ACL_FILE}\` to it`
  const modules = await readConfTree(confDir, 'modules.conf')
  const entries = modules.docs.flatMap(sections).flatMap((s) => s.entries)
  const autoload =
    entries
      .findLast((e) => e.key === 'autoload')
      ?.value.trim()
      .toLowerCase() === 'yes'
  const loaded = entries.some((e) => e.key === 'load' && e.value.trim() === 'res_pjsip_acl.so')
  const noload = entries.some((e) => e.key === 'noload' && e.value.trim() === 'res_pjsip_acl.so')
  if ((!autoload && !loaded) || noload)
    return 'modules.conf does not load res_pjsip_acl.so; add the line `load => res_pjsip_acl.so` to it'
  return undefined
}

/** The config dir's files as they are now (names, sizes, times), to tell whether a check still holds. */
async function confState(confDir: string): Promise<string> {
  const names = (await readdir(confDir)).filter((n) => n.endsWith('.conf') && n !== ACL_FILE).sort()
  const stats = await Promise.all(names.map((n) => stat(join(confDir, n)).catch(() => undefined)))
  return names.map((n, i) => `${n}:${stats[i]?.size}:${stats[i]?.mtimeMs}`).join('|')
}

/**
 * Reloads for the ACL file in a running Asterisk: `module reload res_pjsip.so`, which reads every
 * PJSIP file, so only when the config dir passes the check (a user's half-saved endpoint file must
 * not be loaded on our account; a dir unchanged since it last passed is not checked again, which
 * under a flood of bans would parse it for every batch), and again while Asterisk answers that
 * another reload (a saved file's) is under way, which it otherwise ignores. Each reload resolves
 * with why it could not be done, or undefined once done.
 */
export function aclReloader(confDir: string, asterisk: Pick<AsteriskView, 'rx'>): () => Promise<string | undefined> {
  let passed: string | undefined
  return async () => {
    const state = await confState(confDir)
    if (state !== passed) {
      const { problems } = await checkConfDir(confDir)
      if (problems.length)
        return `the config has ${problems.length} problem(s), first: ${problems[0]}; the bans take effect with the reload that follows the fix`
      passed = state
    }
    return rxReload(asterisk.rx, 'module reload res_pjsip.so').then(
      () => undefined,
      (err: unknown) => errorMessage(err),
    )
  }
}
