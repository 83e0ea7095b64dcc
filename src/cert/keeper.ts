// The TLS certificate Asterisk serves: make sure cert_file and priv_key_file hold a usable pair from
// the configured source, and keep it fresh. Decisions come from cert-policy.ts; this file does the I/O.
import { mkdir, readFile } from 'node:fs/promises'
import { hostname as osHostname } from 'node:os'
import { dirname, join } from 'node:path'
import { isIP } from 'node:net'
import { writeFileAtomic } from '../base/atomic-write.ts'
import { ConfigError, errorMessage } from '../base/errors.ts'
import { settingByName } from '../config/settings.ts'
import type { Logger } from '../base/log.ts'
import { describeCertificate, keyMatchesCertificate, type CertInfo } from './info.ts'
import {
  DEFAULT_BACKOFF,
  DEFAULT_RENEWAL,
  backoffDelay,
  formatDuration,
  missingNames,
  normalizeName,
  renewalDecision,
  resolveAcmeDirectory,
  type BackoffPolicy,
  type RenewalPolicy,
  type TlsMode,
} from './policy.ts'
import type { KeyAndCert } from './selfsigned.ts'
import type { AcmeOptions, ExternalAccountBinding } from './acme.ts'
import type { TraefikLookup } from './traefik.ts'

export const ACCOUNT_KEY_NAME = 'acme_account_key.pem'

export interface AcmeSettings {
  /** ACME_DIRECTORY as given: empty/`production`, `staging` or a URL. */
  directory?: string | undefined
  email?: string | undefined
  /** Port our HTTP-01 listener binds while a challenge is pending; default 80. */
  httpPort?: number | undefined
  httpAddress?: string | undefined
  eab?: ExternalAccountBinding | undefined
  /** Default: `acme_account_key.pem` beside certFile. */
  accountKeyFile?: string | undefined
  /** PEM of extra CA(s) trusted for the ACME server's HTTPS (see cert-acme.ts). */
  caCert?: string | undefined
  requestRetries?: number | undefined
}

export interface CertOptions {
  mode: TlsMode
  certFile: string
  keyFile: string
  /** The server's external name (SIP_EXTERNAL_HOST); a self-signed certificate falls back to os.hostname(). */
  hostname?: string | undefined
  /** Names to obtain (acme) or find (traefik); default [hostname]. */
  domains?: readonly string[] | undefined
  acme?: AcmeSettings | undefined
  /** Traefik's acme.json (ACME_FILE); required in traefik mode. */
  traefikFile?: string | undefined
  selfSignedDays?: number | undefined
  logger: Logger
  now?: (() => Date) | undefined
  random?: (() => number) | undefined
  renewal?: RenewalPolicy | undefined
  backoff?: BackoffPolicy | undefined
}

export interface CertResult {
  /** New files were written: Asterisk should reload res_pjsip. */
  changed: boolean
  /** Describes the certificate now in certFile. */
  issuer: string
  names: string[]
  notAfter: Date
  nextCheck: Date
  /** Obtaining or importing failed; the certificate described is the one kept (or a self-signed stand-in). */
  error?: Error
}

interface Pair extends KeyAndCert {
  info: CertInfo
}

type Current = { pair: Pair; problem?: undefined } | { pair?: undefined; problem: string }

async function readCurrent(certFile: string, keyFile: string): Promise<Current> {
  const readIfThere = (file: string) =>
    readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
      if (err.code === 'ENOENT') return undefined
      throw err
    })
  const [cert, key] = await Promise.all([readIfThere(certFile), readIfThere(keyFile)])
  if (cert === undefined) return { problem: `${certFile} does not exist` }
  if (key === undefined) return { problem: `${keyFile} does not exist` }
  let info: CertInfo
  try {
    info = describeCertificate(cert)
  } catch {
    return { problem: `${certFile} holds no PEM certificate` }
  }
  if (!keyMatchesCertificate(cert, key)) return { problem: `${keyFile} is not the private key of ${certFile}` }
  return { pair: { cert, key, info } }
}

// Key first: a crash between the two renames leaves a pair that does not match, which the next
// check sees (keyMatchesCertificate) and replaces.
async function install(opts: CertOptions, kc: KeyAndCert): Promise<Pair> {
  const info = describeCertificate(kc.cert)
  await mkdir(dirname(opts.certFile), { recursive: true })
  await mkdir(dirname(opts.keyFile), { recursive: true })
  await writeFileAtomic(opts.keyFile, kc.key, { mode: 0o600, forceMode: true })
  await writeFileAtomic(opts.certFile, kc.cert, { mode: 0o644 })
  return { ...kc, info }
}

function namesFor(opts: CertOptions): string[] {
  if (opts.mode === 'selfsigned') return [normalizeName(opts.hostname || osHostname(), 'SIP_EXTERNAL_HOST')]
  const given = opts.domains?.filter((d) => d.trim() !== '') ?? []
  const raw = given.length > 0 ? given : opts.hostname ? [opts.hostname] : []
  if (raw.length === 0) {
    throw new ConfigError([
      `TLS_MODE=${opts.mode} needs ACME_DOMAINS or SIP_EXTERNAL_HOST, the name(s) the certificate is for; got neither`,
    ])
  }
  const names = [...new Set(raw.map((d) => normalizeName(d, 'ACME_DOMAINS')))]
  const ip = opts.mode === 'acme' ? names.find((n) => isIP(n)) : undefined
  if (ip) throw new ConfigError([`ACME_DOMAINS must list DNS names (HTTP-01 orders no IP addresses), got \`${ip}\``])
  return names
}

function checkOptions(opts: CertOptions): void {
  if (opts.mode === 'traefik' && !opts.traefikFile) {
    throw new ConfigError(["TLS_MODE=traefik needs ACME_FILE, the path of Traefik's acme.json, got nothing"])
  }
  if (opts.mode === 'acme') resolveAcmeDirectory(opts.acme?.directory)
  const eab = opts.acme?.eab
  if (eab && (!eab.kid || !eab.hmacKey)) {
    throw new ConfigError([
      `ACME_EAB_KID and ACME_EAB_HMAC_KEY go together, got only ${eab.kid ? 'ACME_EAB_KID' : 'ACME_EAB_HMAC_KEY'}`,
    ])
  }
}

const asError = (err: unknown): Error => (err instanceof Error ? err : new Error(String(err)))

const describeFields = (info: CertInfo) => ({
  issuer: info.issuer,
  names: info.names.join(','),
  not_after: info.notAfter.toISOString(),
})

function acmeOptions(opts: CertOptions, names: string[]): AcmeOptions {
  const a = opts.acme ?? {}
  return {
    directoryUrl: resolveAcmeDirectory(a.directory),
    email: a.email,
    domains: names,
    accountKeyFile: a.accountKeyFile ?? join(dirname(opts.certFile), ACCOUNT_KEY_NAME),
    httpPort: a.httpPort ?? Number(settingByName('ACME_HTTP_PORT').value),
    httpAddress: a.httpAddress,
    eab: a.eab,
    caCert: a.caCert,
    requestRetries: a.requestRetries,
    logger: opts.logger,
  }
}

/**
 * One check: decide, obtain if due, write, log. `failures` counts the failed checks just before this
 * one; without `contactCa` an ACME order that is due is left to the next check, due at once.
 */
async function check(opts: CertOptions, failures: number, contactCa = true): Promise<CertResult> {
  checkOptions(opts)
  const log = opts.logger
  const now = (opts.now ?? (() => new Date()))()
  const random = opts.random ?? Math.random
  const renewal = opts.renewal ?? DEFAULT_RENEWAL
  const names = namesFor(opts)
  const current = await readCurrent(opts.certFile, opts.keyFile)
  let changed = false
  let pair = current.pair

  const result = (p: Pair, nextCheck: Date, error?: Error): CertResult => {
    const fields = { mode: opts.mode, ...describeFields(p.info), next_check: nextCheck.toISOString(), changed }
    if (error) log.error('keeping the certificate in use', { ...fields, failures: failures + 1, error: error.message })
    else log.info('certificate in use', fields)
    return {
      changed,
      issuer: p.info.issuer,
      names: p.info.names,
      notAfter: p.info.notAfter,
      nextCheck,
      ...(error ? { error } : {}),
    }
  }
  const retryAt = () => new Date(now.getTime() + backoffDelay(failures + 1, random, opts.backoff ?? DEFAULT_BACKOFF))

  // A missing or broken pair is replaced by a self-signed one at once, whatever the mode: Asterisk
  // must be able to start its TLS transport while a CA or Traefik is still out of reach.
  if (!pair) {
    log.info('creating a self-signed certificate', { reason: current.problem, names: names.join(',') })
    pair = await install(
      opts,
      await (await import('./selfsigned.ts')).createSelfSigned({ names, now, days: opts.selfSignedDays }),
    )
    changed = true
    if (opts.mode === 'selfsigned') return result(pair, renewalDecision(pair.info, now, random, renewal).nextCheck)
  }

  if (opts.mode === 'traefik') {
    const file = opts.traefikFile! // checkOptions made sure
    let lookup: TraefikLookup
    try {
      lookup = await (await import('./traefik.ts')).readTraefikCertificate(file, names)
    } catch (err) {
      return result(pair, retryAt(), asError(err))
    }
    for (const problem of lookup.problems) log.warn('unusable entry in Traefik store', { file, problem })
    const found = lookup.found
    if (!found)
      return result(
        pair,
        retryAt(),
        new Error(`${file} (${lookup.layout} layout) holds no certificate for ${names.join(', ')}`),
      )
    if (found.info.fingerprint !== pair.info.fingerprint) {
      log.info('importing certificate from Traefik', { file, resolver: found.resolver, ...describeFields(found.info) })
      pair = await install(opts, found)
      changed = true
    }
    const due = renewalDecision(pair.info, now, random, renewal)
    if (due.renew) log.warn('Traefik has not renewed this certificate yet', { reason: due.reason })
    return result(pair, new Date(now.getTime() + renewal.checkEveryMs))
  }

  if (opts.mode === 'selfsigned' && !pair.info.ours) {
    // Someone put their own certificate here (the seed invites that): serve it, never replace it.
    const due = renewalDecision(pair.info, now, random, renewal)
    if (due.renew)
      log.warn(
        'the provided certificate needs renewing, which PrivateDial does not do for certificates it did not make',
        { reason: due.reason },
      )
    return result(pair, new Date(now.getTime() + renewal.checkEveryMs))
  }

  const missing = missingNames(pair.info.names, names)
  const due = renewalDecision(pair.info, now, random, renewal)
  const why =
    opts.mode === 'acme' && pair.info.ours
      ? 'self-signed stand-in, no certificate from the CA yet'
      : missing.length > 0
        ? `does not cover ${missing.join(', ')}`
        : due.renew
          ? due.reason
          : undefined
  if (why === undefined) {
    log.debug('no renewal due', { reason: due.reason })
    return result(pair, due.nextCheck)
  }
  if (opts.mode === 'acme' && !contactCa) {
    log.info('certificate from the CA due; ordering it in the background', { reason: why })
    return result(pair, now)
  }
  log.info(opts.mode === 'acme' ? 'requesting a certificate from the CA' : 'renewing the self-signed certificate', {
    reason: why,
    names: names.join(','),
  })
  let fresh: KeyAndCert
  try {
    // A renewed self-signed certificate keeps its key, so phones that pinned it keep trusting it.
    fresh =
      opts.mode === 'acme'
        ? await (await import('./acme.ts')).obtainAcmeCertificate(acmeOptions(opts, names))
        : await (
            await import('./selfsigned.ts')
          ).createSelfSigned({ names, now, days: opts.selfSignedDays, key: pair.key })
  } catch (err) {
    return result(pair, retryAt(), asError(err))
  }
  pair = await install(opts, fresh)
  changed = true
  const next = renewalDecision(pair.info, now, random, renewal)
  if (next.renew)
    log.warn('the new certificate is already due for renewal; is the clock right?', { reason: next.reason })
  return result(pair, next.renew ? new Date(now.getTime() + renewal.checkEveryMs) : next.nextCheck)
}

export interface EnsureOptions {
  /**
   * false: do not wait for a CA (which can take minutes when it is unreachable); a due ACME order
   * gets nextCheck = now, so keepCertificateFresh({ after }) places it at once, in the background.
   * A usable pair (at worst a self-signed stand-in) is on disk either way. Default true.
   */
  contactCa?: boolean | undefined
}

/**
 * Obtain or renew now if needed and write cert_file / priv_key_file. Throws only for bad options
 * (ConfigError) or files it cannot write; a CA or Traefik failure is reported in `error`, with the
 * working (or a self-signed stand-in) certificate kept in place.
 */
export function ensureCertificate(opts: CertOptions, ensure: EnsureOptions = {}): Promise<CertResult> {
  return check(opts, 0, ensure.contactCa ?? true)
}

/** Run `run` at `at`; returns a cancel function. Injected by tests so nothing sleeps. */
export type SetTimer = (at: Date, run: () => Promise<void>) => () => void

// setTimeout fires at once for delays past 2^31-1 ms (~24.8 days); firing early only means an extra check.
const MAX_DELAY = 2 ** 31 - 1

export interface FreshOptions {
  /** The result of the ensureCertificate call at start; without it the first check runs at once. */
  after?: CertResult | undefined
  setTimer?: SetTimer | undefined
  /** Traefik mode: quiet time after the last change to acme.json before it is read. */
  debounceMs?: number | undefined
}

export interface Freshness {
  /** Check now (e.g. on a signal); merged with a check already running. */
  checkNow(why: string): Promise<void>
  stop(): Promise<void>
  /** Traefik mode: resolves once acme.json is watched. */
  ready: Promise<void>
}

/**
 * Keep the certificate fresh: check when the last check said, retry failures with backoff, follow
 * Traefik's acme.json, and call `onChange` after new files were written (the caller reloads
 * res_pjsip there). Checks never overlap; requests that arrive during one run one more check after it.
 */
export function keepCertificateFresh(
  opts: CertOptions,
  onChange: (r: CertResult) => void | Promise<void>,
  fresh: FreshOptions = {},
): Freshness {
  const log = opts.logger
  const now = opts.now ?? (() => new Date())
  const setTimer: SetTimer =
    fresh.setTimer ??
    ((at, run) => {
      const t = setTimeout(() => void run(), Math.min(Math.max(at.getTime() - now().getTime(), 0), MAX_DELAY))
      return () => clearTimeout(t)
    })
  let failures = fresh.after?.error ? 1 : 0
  let cancel: (() => void) | undefined
  let running: Promise<void> | undefined
  let again: string | undefined
  let stopped = false

  const schedule = (at: Date) => {
    if (stopped) return
    cancel?.()
    log.debug('next certificate check', { at: at.toISOString(), in: formatDuration(at.getTime() - now().getTime()) })
    cancel = setTimer(at, () => checkNow('scheduled'))
  }

  const once = async (why: string) => {
    log.debug('checking certificate', { why })
    let r: CertResult
    try {
      r = await check(opts, failures)
    } catch (err) {
      failures++
      const delay = backoffDelay(failures, opts.random ?? Math.random, opts.backoff ?? DEFAULT_BACKOFF)
      log.error('certificate check failed', { error: errorMessage(err), failures, retry_in: formatDuration(delay) })
      schedule(new Date(now().getTime() + delay))
      return
    }
    failures = r.error ? failures + 1 : 0
    if (r.changed) {
      try {
        await onChange(r)
      } catch (err) {
        log.error('new certificate written, but applying it failed', { error: errorMessage(err) })
      }
    }
    schedule(r.nextCheck)
  }

  function checkNow(why: string): Promise<void> {
    if (stopped) return Promise.resolve()
    if (running) {
      again = why
      return running
    }
    running = (async () => {
      let reason: string | undefined = why
      while (reason !== undefined && !stopped) {
        again = undefined
        await once(reason)
        reason = again
      }
    })().finally(() => {
      running = undefined
    })
    return running
  }

  // Only Traefik mode loads the watcher (chokidar) here.
  const file = opts.mode === 'traefik' ? opts.traefikFile : undefined
  const watch = file
    ? import('../base/watch.ts').then(({ watchFiles }) =>
        watchFiles({
          files: [file],
          log,
          debounceMs: fresh.debounceMs ?? 500,
          onChange: () => checkNow('acme.json changed'),
        }),
      )
    : undefined

  if (fresh.after) schedule(fresh.after.nextCheck)
  else void checkNow('start')

  return {
    checkNow,
    ready: watch ? watch.then((w) => w.ready) : Promise.resolve(),
    async stop() {
      stopped = true
      cancel?.()
      await (await watch)?.close()
      await running
    },
  }
}
