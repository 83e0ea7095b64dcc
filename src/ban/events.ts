// Asterisk's security events as its console prints them (logger.conf's console channel carries
// `security`), e.g.
//   [2026-12-01 08:08:23.190] SECURITY[21093]: res_security_log.c:114 security_event_stasis_cb:
//   SecurityEvent="InvalidAccountID",...,AccountID="nobody",SessionID="...",
//   LocalAddress="IPV4/UDP/10.0.0.2/5060",RemoteAddress="IPV4/UDP/203.0.113.5/5060"
// Pure: a line in, an event or nothing out.
import { isIP } from 'node:net'

/** Events that count against the source address, and how the log describes each. */
const FAILURES: Readonly<Record<string, (account: string) => string>> = {
  InvalidAccountID: (a) => `unknown account ${a}`,
  ChallengeResponseFailed: (a) => `wrong password for ${a}`,
  InvalidPassword: (a) => `wrong password for ${a}`,
  FailedACL: (a) => `refused by an ACL (account ${a})`,
}

export interface SecurityEvent {
  kind: 'failure' | 'success'
  /** The event's name, e.g. ChallengeResponseFailed. */
  event: string
  /** The source address, normalised (no brackets, IPv4-mapped IPv6 as IPv4). */
  address: string
  /** For the log: what happened, e.g. "wrong password for alice". */
  reason: string
}

// The console's form, `SECURITY[tid]: file.c:line function: `, and the log file's, `SECURITY[tid] file.c: `.
const PREFIX = /\bSECURITY\[\d+\]:? \S+(?: \S+)?: SecurityEvent="([A-Za-z]+)"/

/** Asterisk's per-attempt security lines: `run` keeps them off its own log (the ban service sums them up). */
export function isSecurityEventLine(line: string): boolean {
  return PREFIX.test(line)
}

/** The last RemoteAddress field with a well-formed value. */
const REMOTE = /,RemoteAddress="IPV[46]\/[A-Z]+\/\[?([0-9A-Fa-f:.]+)\]?\/\d+"/g

/** The address text as nftables and Asterisk's ACLs write it, or undefined if it is not an address. */
export function normalizeAddress(text: string): string | undefined {
  const bare = text.replace(/^\[(.*)\]$/, '$1')
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(bare)
  if (mapped) return mapped[1]
  const family = isIP(bare)
  if (family === 4) return bare
  if (family !== 6) return undefined
  // One spelling per IPv6 address, so counts and bans can't be dodged by writing it differently.
  return new URL(`http://[${bare}]/`).hostname.slice(1, -1)
}

/**
 * The event on a console line, or undefined for any other line and for events that neither fail
 * nor succeed (ChallengeSent, ...).
 *
 * AccountID and SessionID (the Call-ID) are the caller's own text and come before RemoteAddress,
 * so a caller could write a fake `,RemoteAddress="..."` into them to have another address
 * blamed; the real field is the last one, so the last match is taken.
 */
export function parseSecurityEvent(line: string): SecurityEvent | undefined {
  const head = PREFIX.exec(line)
  if (!head) return undefined
  const event = head[1]!
  const describe = FAILURES[event]
  if (!describe && event !== 'SuccessfulAuth') return undefined
  let last: string | undefined
  for (const m of line.matchAll(REMOTE)) last = m[1]
  const address = last === undefined ? undefined : normalizeAddress(last)
  if (address === undefined) return undefined
  if (!describe) return { kind: 'success', event, address, reason: 'logged in' }
  const account = /,AccountID="([^"]*)"/.exec(line)?.[1] ?? '<unknown>'
  return { kind: 'failure', event, address, reason: describe(account.slice(0, 64)) }
}
