// Texts to a trunk leave through a twin of it whose name has no colon. Asterisk starts the From of
// an out-of-dialog MESSAGE from the endpoint's name and then replaces only its user part: for the
// spec's `[itsp:mydoe]` the URI is read as user `itsp`, password `mydoe`, and a text goes out
// From `sip:+12025550160:mydoe@...`, which ITSPs reject. The twin (pjsip_text_trunks.conf,
// included by pjsip.conf) reaches the same contact (the trunk's AOR) with the trunk's outbound
// auth, transport and proxy, and is written from pjsip_endpoint.conf at start and on each change,
// so there is nothing per trunk for the user to do. The dial plan (sub_text_trunk) names it as
// textTrunkName does.
import { join } from 'node:path'
import { readFileSync } from 'node:fs'
import { escapeValue, sections, templateResolver, type ConfDoc } from './conf.ts'
import { readConfTree } from './files.ts'
import { writeFileAtomic } from '../base/atomic-write.ts'
import type { Logger } from '../base/log.ts'

export const TEXT_TRUNKS_FILE = 'pjsip_text_trunks.conf'

/** `itsp:mydoe` -> `text-itsp-mydoe`; sub_text_trunk: text-${REPLACE(trunk,:,-)}. */
export const textTrunkName = (trunk: string): string => `text-${trunk.replaceAll(':', '-')}`

/** Endpoint settings that shape an out-of-dialog request, with the wizard keys that set them (the later wins). */
const COPIED: [string, string[]][] = [
  ['transport', ['transport', 'endpoint/transport']],
  ['outbound_proxy', ['outbound_proxy', 'endpoint/outbound_proxy']],
  ['from_domain', ['endpoint/from_domain']],
  ['from_user', ['endpoint/from_user']],
  ['user_eq_phone', ['endpoint/user_eq_phone']],
]

/**
 * The twins' file for the wizard sections of `docs` (pjsip_wizard.conf and what it includes):
 * one for each trunk (a wizard section with remote_hosts, so it has an AOR) whose name has a colon.
 */
export function textTrunksConf(docs: ConfDoc[]): string {
  const resolve = templateResolver(docs)
  const last = (name: string, key: string) => resolve(name, key).at(-1)?.trim()
  const out = [
    `; Made by privatedial from the trunks in pjsip_endpoint.conf; it is rewritten at start and whenever`,
    `; that file changes, so edit the trunks there. Texts to a trunk whose name has a colon leave`,
    `; through its twin here: Asterisk would put what follows the colon into their From.`,
    '',
  ]
  for (const s of docs.flatMap(sections)) {
    if (s.isTemplate || !s.name.includes(':') || last(s.name, 'type') !== 'wizard') continue
    if (!last(s.name, 'remote_hosts')) continue
    const lines = [`[${textTrunkName(s.name)}]`, 'type = endpoint', `aors = ${s.name}`]
    const auth = last(s.name, 'sends_auth') === 'yes' ? `${s.name}-oauth` : last(s.name, 'endpoint/outbound_auth')
    if (auth) lines.push(`outbound_auth = ${escapeValue(auth)}`)
    for (const [key, from] of COPIED) {
      const value = from.flatMap((k) => resolve(s.name, k)).at(-1)
      if (value) lines.push(`${key} = ${escapeValue(value)}`)
    }
    // It only sends: no codecs, and no identify section names it, so nothing ever comes in on it.
    lines.push(
      'context = dp_entry_text_in',
      'message_context = dp_entry_text_in',
      'allow = !all',
      'identify_by = ip',
      '',
    )
    out.push(...lines)
  }
  return out.join('\n')
}

/** Writes pjsip_text_trunks.conf when its content changes; returns whether it did. */
export async function writeTextTrunks(confDir: string, log: Logger): Promise<boolean> {
  const tree = await readConfTree(confDir, 'pjsip_wizard.conf')
  const text = textTrunksConf(tree.docs)
  const path = join(confDir, TEXT_TRUNKS_FILE)
  let old: string | undefined
  try {
    old = readFileSync(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err
  }
  if (old === text) return false
  await writeFileAtomic(path, text)
  const twins = [...text.matchAll(/^\[([^\]]+)\]/gm)].map((m) => m[1]!)
  log.info(`wrote ${TEXT_TRUNKS_FILE}`, { twins: twins.join(',') || 'none' })
  return true
}
