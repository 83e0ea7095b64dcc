// `privatedial health`: healthy when Asterisk answers its remote console, every transport the
// config defines is up (a transport whose bind failed is missing from `pjsip show transports`) and
// every trunk that registers with its ITSP is registered (else the ITSP's calls don't arrive).
import { errorMessage } from '../base/errors.ts'
import { rx, type AsteriskTarget } from './process.ts'
import { describeRegistrations, trunkRegistrations } from './registrations.ts'
import { sections, templateResolver, type ConfDoc } from '../config/conf.ts'
import { readConfTree } from '../config/files.ts'
import { describeUnavailable, unavailableIpv6 } from './ipv6.ts'

/** Non-template sections of type transport, through their templates. */
export function definedTransports(docs: ConfDoc[]): string[] {
  const resolve = templateResolver(docs)
  return docs
    .flatMap(sections)
    .filter((s) => !s.isTemplate && resolve(s.name, 'type').at(-1) === 'transport')
    .map((s) => s.name)
}

/**
 * Transport names from `pjsip show transports` output (lines `Transport:  <name>  <type> ...`); the
 * column header has the same shape with `<TransportId...>` where a name stands.
 */
export function listedTransports(output: string): string[] {
  return [...output.matchAll(/^Transport:\s+([^<\s]\S*)\s/gm)].map((m) => m[1]!)
}

export async function health(t: AsteriskTarget): Promise<{ ok: boolean; detail: string }> {
  let out: string
  try {
    out = await rx(t, 'pjsip show transports', 5000)
  } catch (err) {
    return { ok: false, detail: errorMessage(err) }
  }
  const tree = await readConfTree(t.confDir, 'pjsip.conf')
  const want = definedTransports(tree.docs)
  const have = listedTransports(out)
  // IPv6 transports on a host without IPv6 can't be up, and the PBX works without them.
  const noIpv6 = want.some((n) => !have.includes(n)) ? await unavailableIpv6(tree.docs) : undefined
  const missing = want.filter((n) => !have.includes(n) && !noIpv6?.names.includes(n))
  if (!want.length) return { ok: false, detail: `no transport is defined in ${t.confDir}/pjsip.conf or its includes` }
  if (missing.length)
    return { ok: false, detail: `transport(s) not up: ${missing.join(', ')} (up: ${have.join(', ') || 'none'})` }
  const note = noIpv6 ? `; ${describeUnavailable(noIpv6)}` : ''
  const up = `Asterisk answers; transports up: ${have.join(', ')}${note}`
  let regs
  try {
    regs = await trunkRegistrations(t.confDir, await rx(t, 'pjsip show registrations', 5000))
  } catch (err) {
    return { ok: false, detail: `${up}; registrations not known: ${errorMessage(err)}` }
  }
  if (!regs.length) return { ok: true, detail: up }
  return { ok: regs.every((r) => r.status === 'Registered'), detail: `${up}; ${describeRegistrations(regs)}` }
}
