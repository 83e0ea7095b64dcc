// `privatedial bans` and `privatedial bans delete ADDRESS`: what the ban service saved, and a
// request to lift one that the running service acts on (store.ts says why it is a request).
import { UsageError } from '../base/errors.ts'
import { normalizeAddress } from './events.ts'
import { liftPending, loadBans, requestLift, type Saved } from './store.ts'

/** The active bans as a table, soonest to end first. */
export function formatBans(saved: Saved | undefined, now: number): string {
  const active = (saved?.bans ?? []).filter((b) => b.until > now).sort((a, b) => a.until - b.until)
  if (!active.length) return 'no active bans\n'
  const rows = [
    ['address', 'until', 'failures', 'ban', 'reason'],
    ...active.map((b) => [
      b.address,
      new Date(b.until).toISOString().replace(/\.\d+Z$/, 'Z'),
      String(b.count),
      b.strike === 1 ? '1st' : b.strike === 2 ? '2nd' : b.strike === 3 ? '3rd' : `${b.strike}th`,
      b.reason,
    ]),
  ]
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)))
  const lines = rows.map((r) =>
    r
      .map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd(),
  )
  return `${lines.join('\n')}\n${active.length} active, enforced by ${saved?.mode === 'nft' ? 'nftables' : 'Asterisk (PJSIP ACL)'}\n`
}

export async function listBans(file: string, now = Date.now()): Promise<string> {
  return formatBans(await loadBans(file), now)
}

/**
 * Asks the running service to lift the ban on `raw` and waits until it has (the request is gone
 * once the ban is off and saved). False when no service took it in `timeoutMs`: the request stays,
 * and the next start lifts it.
 */
export async function liftBan(
  file: string,
  raw: string,
  timeoutMs = 10_000,
): Promise<{ address: string; lifted: boolean }> {
  const address = normalizeAddress(raw)
  if (!address) throw new UsageError(`bans delete: expected an IPv4 or IPv6 address, got \`${raw}\``)
  const saved = await loadBans(file)
  if (!saved?.bans.some((b) => b.address === address && b.until > Date.now()))
    throw new UsageError(`bans delete: ${address} is not banned (see \`privatedial bans\`)`)
  await requestLift(file, address)
  for (const deadline = Date.now() + timeoutMs; Date.now() < deadline; await new Promise((r) => setTimeout(r, 50)))
    if (!(await liftPending(file, address))) return { address, lifted: true }
  return { address, lifted: false }
}
