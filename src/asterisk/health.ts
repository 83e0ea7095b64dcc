// `privatedial health`: healthy when Asterisk answers its remote console, every transport the
// config defines is up (a transport whose bind failed is missing from `pjsip show transports`) and
// every trunk that registers with its ITSP is registered (else the ITSP's calls don't arrive).
import { rx, type AsteriskTarget } from './process.ts'
import { describeRegistrations, trunkRegistrations } from './registrations.ts'
import { sections, templateResolver, type ConfDoc } from '../config/conf.ts'
import { readConfTree } from '../config/files.ts'

/** Non-template sections of type transport, through their templates. */
export function definedTransports(docs: ConfDoc[]): string[] {
  const resolve = templateResolver(docs)
  return docs
    .flatMap(sections)
    .filter((s) => !s.isTemplate && resolve(s.name, 'type').at(-1) === 'transport')
    .map((s) => s.name)
}

/** Transport names from `pjsip show transports` output (lines `Transport:  <name>  <type> ...`). */
export function listedTransports(output: string): string[] {
  return [...output.matchAll(/^Transport:\s+(?!<)(\S+)/gm)].map((m) => m[1]!)
}

export async function health(t: AsteriskTarget): Promise<{ ok: boolean; detail: string }> {
  let out: string
  try {
    out = await rx(t, 'pjsip show transports', 5000)
  } catch (err) {
    return { ok: false, detail: (err as Error).message }
  }
  const tree = await readConfTree(t.confDir, 'pjsip.conf')
  const want = definedTransports(tree.docs)
  const have = listedTransports(out)
  const missing = want.filter((n) => !have.includes(n))
  if (!want.length) return { ok: false, detail: `no transport is defined in ${t.confDir}/pjsip.conf or its includes` }
  if (missing.length)
    return { ok: false, detail: `transport(s) not up: ${missing.join(', ')} (up: ${have.join(', ') || 'none'})` }
  const up = `Asterisk answers; transports up: ${have.join(', ')}`
  let regs
  try {
    regs = await trunkRegistrations(t.confDir, await rx(t, 'pjsip show registrations', 5000))
  } catch (err) {
    return { ok: false, detail: `${up}; registrations not known: ${(err as Error).message}` }
  }
  if (!regs.length) return { ok: true, detail: up }
  return { ok: regs.every((r) => r.status === 'Registered'), detail: `${up}; ${describeRegistrations(regs)}` }
}
