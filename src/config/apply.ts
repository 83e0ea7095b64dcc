// `privatedial apply`: environment overrides written into the config files. The plan and the edits
// are pure (planEdits, applyEdits); applyToDir is the thin edge that reads and writes the files.
import { getValues, parseConf, printConf, resolveValues, sections, setValues, type ConfDoc } from './conf.ts'
import { readConf } from './files.ts'
import { recordRewrite } from './seed.ts'
import { writeFileAtomic } from '../base/atomic-write.ts'
import { joinHostPort, splitHostPort } from '../base/host-port.ts'
import { ConfigError } from '../base/errors.ts'
import { isMinivmSend, mailcmdWords, quoteMailcmd } from './mailcmd.ts'
import { FAMILIES, MASK, SETTINGS, type Settings, type Write } from './settings.ts'
import type { Logger } from '../base/log.ts'
import { lookup } from 'node:dns/promises'
import { isIP } from 'node:net'
import { join } from 'node:path'

export interface Edit {
  file: string
  section: string
  key: string
  /** The variables this edit comes from, for the log. */
  from: string[]
  /** New values from the current ones; a string is a problem that stops the whole apply. */
  values: (current: string[]) => string[] | { problem: string }
}

const TRANSPORT = 'pjsip_transport.conf'
const MINIVM = 'minivm.conf'

/** `0.0.0.0:5060`, `[::]:5060` or a bare address, with its port replaced. */
export function withPort(bind: string, port: string): string {
  return joinHostPort(splitHostPort(bind)?.host || '0.0.0.0', port)
}

export function portOf(bind: string | undefined): string | undefined {
  return bind ? splitHostPort(bind)?.port : undefined
}

const SECURITY_FLAG: Record<string, string> = { starttls: 'starttls', tls: 'tls', none: 'smtp' }
const DEFAULT_SMTP_PORT: Record<string, string> = { starttls: '587', tls: '465', smtp: '25', smtps: '465' }

/** minivm.conf's mailcmd is a shell command line; edit its minivm-send flags as words, never as text. */
export function editMailcmd(current: string | undefined, settings: Settings): string | { problem: string } {
  const words = current ? mailcmdWords(current) : []
  if (!words)
    return {
      problem: `${MINIVM} [general] mailcmd \`${current}\` uses shell operators; edit it by hand or unset the SMTP_* variables`,
    }
  // Another mailer (sendmail -t, ...) can't take our flags; SMTP_* means the user wants ours.
  const flags = new Map<string, string>()
  const isOurs = words.length > 0 && isMinivmSend(words[0]!)
  const command = isOurs ? words[0]! : 'minivm-send'
  const rest: string[] = []
  if (isOurs) {
    for (let i = 1; i < words.length; i++) {
      const w = words[i]!
      if (/^-[HPupf]$/.test(w) && i + 1 < words.length) flags.set(w, words[++i]!)
      else rest.push(w)
    }
  }
  const get = (n: string) => settings.get(n)?.value
  const security = get('SMTP_SECURITY')
  if (security) flags.set('-P', SECURITY_FLAG[security]!)
  const old = splitHostPort(flags.get('-H') ?? '')
  const [oldHost, oldPort] = [old?.host ?? '', old?.port]
  const host = get('SMTP_HOST') ?? oldHost
  const port =
    get('SMTP_PORT') ??
    (get('SMTP_HOST') && !oldPort ? undefined : oldPort) ??
    DEFAULT_SMTP_PORT[flags.get('-P') ?? 'starttls']
  if (get('SMTP_HOST') || get('SMTP_PORT')) {
    if (!host) return { problem: `SMTP_PORT is set but there is no mail server host: set SMTP_HOST too` }
    flags.set('-H', joinHostPort(host, port!))
  }
  if (get('SMTP_USER')) flags.set('-u', get('SMTP_USER')!)
  if (get('SMTP_FROM')) flags.set('-f', get('SMTP_FROM')!)
  // The password lives in the environment, never in a file Asterisk and backups can read.
  if (settings.has('SMTP_PASSWORD')) flags.delete('-p')
  const argv = [command, ...[...flags].flatMap(([f, v]) => [f, v]), ...rest]
  return quoteMailcmd(argv)
}

/** The part of a value (a list, comma separated) a Write of one address family takes: maybe none. */
function ofFamily(w: Write, value: string): string | undefined {
  if (!w.family) return value
  const mine = value.split(',').filter((v) => (isIP(v.split('/')[0]!) || 4) === w.family)
  return mine.length ? mine.join(',') : undefined
}

/** How a Write's `as` turns the variable's value into the key's values (see Write in settings.ts). */
function editFor(w: Write, value: string, settings: Settings): Edit['values'] {
  switch (w.as) {
    case 'list':
      return () => value.split(',')
    case 'port':
      return (cur) => [
        withPort(
          cur.at(-1) ?? FAMILIES.find((f) => f.template === w.section || f.tls === w.section)?.any ?? '0.0.0.0',
          value,
        ),
      ]
    case 'mailcmd':
      return (cur) => {
        const r = editMailcmd(cur.at(-1), settings)
        return typeof r === 'string' ? [r] : r
      }
    default:
      return () => [value]
  }
}

/**
 * Which file/section/key each set variable owns, from the settings table. Unset variables own
 * nothing: the file keeps what the user wrote. Variables sharing a key (the SMTP_* flags in one
 * mailcmd) make one edit.
 */
export function planEdits(settings: Settings): Edit[] {
  const edits = new Map<string, Edit>()
  for (const s of SETTINGS) {
    const v = settings.get(s.name)
    if (!v) continue
    for (const w of s.writes ?? []) {
      const value = ofFamily(w, v.value)
      if (value === undefined) continue
      const id = `${w.file}\0${w.section}\0${w.key}`
      const known = edits.get(id)
      if (known) known.from.push(s.name)
      else
        edits.set(id, {
          file: w.file,
          section: w.section,
          key: w.key,
          from: [s.name],
          values: editFor(w, value, settings),
        })
    }
  }
  return [...edits.values()]
}

export interface Change {
  file: string
  section: string
  key: string
  from: string[]
  before: string[]
  after: string[]
}

/**
 * Checks that need the files as well as the env: values a variable sets that, combined with what
 * the files keep, would not work.
 */
function crossChecks(docs: Map<string, ConfDoc>): string[] {
  const problems: string[] = []
  const rtp = docs.get('rtp.conf')
  if (rtp) {
    const start = Number(getValues(rtp, 'general', 'rtpstart').at(-1))
    const end = Number(getValues(rtp, 'general', 'rtpend').at(-1))
    if (start && end && start > end)
      problems.push(
        `RTP port range is empty: rtpstart ${start} > rtpend ${end} (RTP_PORT_MIN must not be above RTP_PORT_MAX)`,
      )
  }
  const transport = docs.get(TRANSPORT)
  for (const f of transport ? FAMILIES : []) {
    const udpTcp = portOf(resolveValues([transport!], f.tcp, 'bind').at(-1))
    const tls = portOf(resolveValues([transport!], f.tls, 'bind').at(-1))
    if (udpTcp && udpTcp === tls) {
      problems.push(`SIP_PORT and SIP_TLS_PORT are both ${tls}; TCP and TLS can't share a port`)
      break
    }
  }
  return problems
}

/** Transports that set their own bind don't follow [t_wan]; say so rather than let SIP_PORT silently not apply. */
function overrideWarnings(docs: Map<string, ConfDoc>, settings: Settings): string[] {
  const transport = docs.get(TRANSPORT)
  const port = settings.get('SIP_PORT')?.value
  if (!transport || !port) return []
  const warnings: string[] = []
  for (const s of sections(transport)) {
    const f = FAMILIES.find((f) => s.templates.includes(f.template))
    if (s.isTemplate || !f || s.name === f.tls) continue
    const bind = resolveValues([transport], s.name, 'bind').at(-1)
    if (portOf(bind) !== port)
      warnings.push(
        `SIP_PORT=${port} set [${f.template}] bind, but [${s.name}] in ${TRANSPORT} sets its own bind \`${bind}\`, which wins`,
      )
  }
  return warnings
}

export function applyEdits(
  docs: Map<string, ConfDoc>,
  edits: Edit[],
  settings: Settings,
): { changes: Change[]; problems: string[]; warnings: string[] } {
  const changes: Change[] = []
  const problems: string[] = []
  for (const e of edits) {
    const doc = docs.get(e.file)
    if (!doc) {
      problems.push(
        `${e.from.join(', ')}: ${e.file} does not exist in the config dir (it is seeded from the image's defaults when missing)`,
      )
      continue
    }
    const before = getValues(doc, e.section, e.key)
    const after = e.values(before)
    if (!Array.isArray(after)) {
      problems.push(after.problem)
      continue
    }
    if (setValues(doc, e.section, e.key, after))
      changes.push({ file: e.file, section: e.section, key: e.key, from: e.from, before, after })
  }
  problems.push(...crossChecks(docs))
  return { changes, problems, warnings: overrideWarnings(docs, settings) }
}

const SECRET_KEY = /pass|secret|hmac|token/i
const PASSWORD_FLAG = /(\s-p\s+)('[^']*'|"[^"]*"|\S+)/g

/** A value as it may be printed: secret keys masked whole, a mailcmd's `-p password` masked. */
export function redactValue(key: string, value: string): string {
  return SECRET_KEY.test(key) ? MASK : value.replace(PASSWORD_FLAG, `$1${MASK}`)
}

/** The same for a diff or file text, line by line. */
export function redact(text: string): string {
  return text
    .split('\n')
    .map((line) => {
      const m = /^([+\- ]?\s*([^=;\s]+)\s*=>?\s*)(.*)$/.exec(line)
      return m ? m[1]! + redactValue(m[2]!, m[3]!) : line
    })
    .join('\n')
}

export interface ApplyOptions {
  confDir: string
  settings: Settings
  dryRun?: boolean
  log: Logger
  /** Where the dry-run diff goes. */
  print?: (text: string) => void
  /** Whether a host name resolves (see `resolvesInDns`); without it, names are written unchecked. */
  resolves?: (host: string) => Promise<boolean>
}

/**
 * A DNS lookup as the container's resolver does it. A resolver that does not answer within 3 s
 * holds up no start: the name is kept, as Asterisk would try it itself.
 */
export const resolvesInDns = (host: string, timeoutMs = 3000): Promise<boolean> => {
  let timer: NodeJS.Timeout | undefined
  const slow = new Promise<boolean>((r) => (timer = setTimeout(() => r(true), timeoutMs)))
  const answer = lookup(host).then(
    () => true,
    () => false,
  )
  return Promise.race([answer, slow]).finally(() => clearTimeout(timer))
}

/**
 * A SIP_EXTERNAL_HOST that does not resolve (the compose file's placeholder, a typo) is said once,
 * in words a user can act on, and kept out of Asterisk's config: Asterisk would otherwise log a
 * dozen ERROR and WARNING lines about it at every start and more at every reload.
 */
async function withoutUnresolvable(
  settings: Settings,
  resolves: ApplyOptions['resolves'],
  log: Logger,
): Promise<Settings> {
  const external = settings.get('SIP_EXTERNAL_HOST')
  if (!external || !resolves || isIP(external.value) || (await resolves(external.value))) return settings
  log.warn(
    `SIP_EXTERNAL_HOST \`${external.value}\` does not resolve: phones behind NAT will get no audio. Asterisk gets no external address until it does; set SIP_EXTERNAL_HOST to the public name or IP phones reach this host at`,
  )
  return new Map([...settings, ['SIP_EXTERNAL_HOST', { ...external, value: '' }]])
}

export interface ApplyResult {
  changes: Change[]
  warnings: string[]
  /** Files rewritten (or that would be, with dryRun). */
  files: string[]
}

/**
 * Read the target files, apply every set variable, and write the files that changed atomically.
 * All problems are found before anything is written: bad input changes no file.
 */
export async function applyToDir(opts: ApplyOptions): Promise<ApplyResult> {
  const { confDir, log } = opts
  const settings = await withoutUnresolvable(opts.settings, opts.resolves, log)
  const edits = planEdits(settings)
  const docs = new Map<string, ConfDoc>()
  const originals = new Map<string, string>()
  for (const file of new Set(edits.map((e) => e.file))) {
    const doc = await readConf(confDir, file)
    if (!doc) continue
    docs.set(file, doc)
    originals.set(file, printConf(doc))
  }
  const { changes, problems, warnings } = applyEdits(docs, edits, settings)
  if (problems.length) throw new ConfigError(problems)
  for (const w of warnings) log.warn(w)
  const files = [...docs].filter(([f, d]) => printConf(d) !== originals.get(f)).map(([f]) => f)
  for (const c of changes) {
    const shown = (vals: string[]) => (vals.length ? vals.map((v) => redactValue(c.key, v)).join(', ') : '(unset)')
    log.info(`${opts.dryRun ? 'would set' : 'set'} ${c.file} [${c.section}] ${c.key}`, {
      from: c.from.join(','),
      was: shown(c.before),
      now: shown(c.after),
    })
  }
  if (!files.length) {
    log.info(
      edits.length
        ? "config files unchanged: they already hold the environment's values"
        : 'config files unchanged: no override variable is set',
    )
    return { changes, warnings, files }
  }
  if (opts.dryRun) {
    // Only a dry run prints a diff: `run` does not load the diff library.
    const { createTwoFilesPatch } = await import('diff')
    for (const f of files) {
      const patch = createTwoFilesPatch(`a/${f}`, `b/${f}`, originals.get(f)!, printConf(docs.get(f)!))
      ;(opts.print ?? ((s) => process.stdout.write(s)))(redact(patch))
    }
    return { changes, warnings, files }
  }
  for (const f of files) {
    // Re-parse what we are about to write: an edit must never produce a file Asterisk can't read.
    const text = printConf(docs.get(f)!)
    parseConf(text, f)
    await writeFileAtomic(join(confDir, f), text)
    // A file still as the image shipped it stays the image's with the environment in it: a later
    // image may replace it (seed), and apply writes the environment in again.
    await recordRewrite(confDir, f, originals.get(f)!, text)
    log.info(`wrote ${f}`)
  }
  return { changes, warnings, files }
}
