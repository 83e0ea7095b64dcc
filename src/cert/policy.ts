// Pure decisions about the TLS certificate: which mode, which names, when to renew, how long to wait
// after a failure. No clock, disk or network here: callers pass `now` and a random source.
import { doublingDelay } from '../base/backoff.ts'
import { isIPv4, isIPv6 } from 'node:net'
import { domainToASCII } from 'node:url'
import { ConfigError } from '../base/errors.ts'

export const TLS_MODES = ['selfsigned', 'acme', 'traefik'] as const
export type TlsMode = (typeof TLS_MODES)[number]

export interface ModeInputs {
  /** TLS_MODE as given; empty means "infer". */
  mode?: string | undefined
  acmeEmail?: string | undefined
  acmeDomains?: string | readonly string[] | undefined
  acmeFile?: string | undefined
}

export interface ModeChoice {
  mode: TlsMode
  /** Why this mode, for the log: `TLS_MODE=acme` or `inferred: ACME_FILE is set`. */
  reason: string
}

const isSet = (v: string | readonly string[] | undefined): boolean =>
  typeof v === 'string' ? v.trim() !== '' : v !== undefined && v.some((s) => s.trim() !== '')

export function chooseTlsMode(inputs: ModeInputs): ModeChoice {
  const given = inputs.mode?.trim().toLowerCase() ?? ''
  if (given !== '') {
    if (!(TLS_MODES as readonly string[]).includes(given)) {
      throw new ConfigError([`TLS_MODE must be one of ${TLS_MODES.join(', ')}, got \`${inputs.mode}\``])
    }
    if (given === 'traefik' && !isSet(inputs.acmeFile)) {
      throw new ConfigError(["TLS_MODE=traefik needs ACME_FILE, the path of Traefik's acme.json, got nothing"])
    }
    return { mode: given as TlsMode, reason: `TLS_MODE=${given}` }
  }
  // ACME settings win over ACME_FILE: someone who named an e-mail or domains asked us to talk to a CA.
  if (isSet(inputs.acmeEmail)) return { mode: 'acme', reason: 'inferred: ACME_EMAIL is set' }
  if (isSet(inputs.acmeDomains)) return { mode: 'acme', reason: 'inferred: ACME_DOMAINS is set' }
  if (isSet(inputs.acmeFile)) return { mode: 'traefik', reason: 'inferred: ACME_FILE is set' }
  return { mode: 'selfsigned', reason: 'inferred: no ACME_EMAIL, ACME_DOMAINS or ACME_FILE' }
}

const LABEL = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/

// net.isIP tries its IPv6 pattern on every name that is not IPv4, and that pattern costs
// milliseconds per call until V8 has compiled it: a start-up paid it for `localhost`. Only a
// name with ':' can be IPv6.
const ipFamily = (s: string) => (isIPv4(s) ? 4 : s.includes(':') && isIPv6(s) ? 6 : 0)

/** One spelling per IP address (IPv6 compressed, lower case), so names compare as strings. */
export function canonicalIp(ip: string): string {
  return ipFamily(ip) === 6 ? new URL(`http://[${ip}]/`).hostname.slice(1, -1) : ip
}

/**
 * A name as it goes into a certificate: DNS names lower-cased and IDNA-encoded, IP addresses in
 * canonical form. `what` names the setting in the error, e.g. `ACME_DOMAINS`.
 */
export function normalizeName(name: string, what = 'certificate name'): string {
  const trimmed = name.trim()
  if (ipFamily(trimmed)) return canonicalIp(trimmed)
  // domainToASCII would silently drop tabs and newlines (WHATWG URL rules); refuse them instead.
  const ascii = trimmed === '' || /[\s\p{Cc}]/u.test(trimmed) ? '' : domainToASCII(trimmed.replace(/\.$/, ''))
  if (ascii === '' || ascii.length > 253 || !ascii.split('.').every((l) => LABEL.test(l))) {
    throw new ConfigError([`${what} must be a DNS name or an IP address, got \`${name}\``])
  }
  return ascii
}

/** Does a certificate name (possibly `*.example.com`) cover a host name? One label per wildcard. */
export function nameMatches(certName: string, host: string): boolean {
  const c = certName.toLowerCase()
  const h = host.toLowerCase()
  if (!c.startsWith('*.')) return c === h
  const dot = h.indexOf('.')
  return dot > 0 && h.slice(dot) === c.slice(1)
}

/** The wanted names no certificate name covers; empty when the certificate serves them all. */
export function missingNames(certNames: readonly string[], wanted: readonly string[]): string[] {
  return wanted.filter((w) => !certNames.some((c) => nameMatches(c, w)))
}

export interface Validity {
  notBefore: Date
  notAfter: Date
}

export interface RenewalPolicy {
  /** Renew when this fraction of the lifetime is left. */
  renewWhenLeft: number
  /** The renewal timer fires up to this fraction of the lifetime after the window opens ... */
  jitterFraction: number
  /** ... but never more than this many ms late. */
  jitterMaxMs: number
  /** Look again at least this often: files replaced by hand, clocks that jumped (suspend, NTP). */
  checkEveryMs: number
}

const HOUR = 3_600_000
export const DEFAULT_RENEWAL: RenewalPolicy = {
  renewWhenLeft: 1 / 3,
  jitterFraction: 1 / 50,
  jitterMaxMs: 24 * HOUR,
  checkEveryMs: 12 * HOUR,
}

export interface RenewalDecision {
  renew: boolean
  /** For the log, e.g. `28d 3h left of 90d, renewal window opens at a third`. */
  reason: string
  /** When the renewal window opens. */
  renewAt: Date
  /** When to look again if nothing is done now. */
  nextCheck: Date
}

export function formatDuration(ms: number): string {
  const sign = ms < 0 ? '-' : ''
  let s = Math.round(Math.abs(ms) / 1000)
  const d = Math.floor(s / 86400)
  s -= d * 86400
  const h = Math.floor(s / 3600)
  s -= h * 3600
  const m = Math.floor(s / 60)
  s -= m * 60
  const parts =
    d > 0 ? [`${d}d`, h && `${h}h`] : h > 0 ? [`${h}h`, m && `${m}m`] : m > 0 ? [`${m}m`, s && `${s}s`] : [`${s}s`]
  return sign + parts.filter(Boolean).join(' ')
}

/**
 * Renew now, or when to look next. The window opens when `renewWhenLeft` of the lifetime is left
 * (a third, as certmagic and Let's Encrypt advise); the timer then fires at a random moment shortly
 * after, so that many servers restarted together do not all ask the CA at the same second.
 */
export function renewalDecision(
  v: Validity,
  now: Date,
  random: () => number,
  policy: RenewalPolicy = DEFAULT_RENEWAL,
): RenewalDecision {
  const lifetime = v.notAfter.getTime() - v.notBefore.getTime()
  const renewAt = new Date(v.notAfter.getTime() - lifetime * policy.renewWhenLeft)
  const left = v.notAfter.getTime() - now.getTime()
  if (lifetime <= 0) {
    return {
      renew: true,
      reason: `validity period is empty (notBefore ${v.notBefore.toISOString()} >= notAfter ${v.notAfter.toISOString()})`,
      renewAt,
      nextCheck: now,
    }
  }
  if (left <= 0) return { renew: true, reason: `expired ${formatDuration(-left)} ago`, renewAt, nextCheck: now }
  const share = `${formatDuration(left)} left of ${formatDuration(lifetime)}`
  if (now >= renewAt) return { renew: true, reason: `${share}, inside the renewal window`, renewAt, nextCheck: now }
  const jitter = random() * Math.min(lifetime * policy.jitterFraction, policy.jitterMaxMs)
  const nextCheck = new Date(Math.min(renewAt.getTime() + jitter, now.getTime() + policy.checkEveryMs))
  return { renew: false, reason: `${share}, renewal window opens ${renewAt.toISOString()}`, renewAt, nextCheck }
}

export interface BackoffPolicy {
  firstMs: number
  maxMs: number
}

export const DEFAULT_BACKOFF: BackoffPolicy = { firstMs: 60_000, maxMs: 6 * HOUR }

/**
 * How long to wait after the `failures`-th failure in a row (1 = the first): doubling from `firstMs`
 * up to `maxMs`, then drawn from the upper half so that retries of many servers spread out.
 */
export function backoffDelay(failures: number, random: () => number, policy: BackoffPolicy = DEFAULT_BACKOFF): number {
  const ceiling = doublingDelay(failures, policy.firstMs, policy.maxMs)
  return Math.round(ceiling / 2 + (ceiling / 2) * random())
}

/** Let's Encrypt's ACME directories, as acme-client names them; here so choosing one needs no ACME client loaded. */
export const LETS_ENCRYPT = {
  production: 'https://acme-v02.api.letsencrypt.org/directory',
  staging: 'https://acme-staging-v02.api.letsencrypt.org/directory',
} as const

/**
 * ACME_DIRECTORY as a URL: empty or `production` is Let's Encrypt, `staging` its staging CA, and any
 * https URL is taken as given (pebble, step-ca, ZeroSSL, ...). RFC 8555 requires HTTPS.
 */
export function resolveAcmeDirectory(value: string | undefined): string {
  const v = value?.trim() ?? ''
  if (v === '' || v.toLowerCase() === 'production') return LETS_ENCRYPT.production
  if (v.toLowerCase() === 'staging') return LETS_ENCRYPT.staging
  if (/^https:\/\/[^\s/]+/i.test(v) && URL.canParse(v)) return v
  throw new ConfigError([
    `ACME_DIRECTORY must be \`production\`, \`staging\` or an https:// URL of an ACME directory, got \`${value}\``,
  ])
}
