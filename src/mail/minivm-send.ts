// minivm-send: the mailer minivm.conf's mailcmd runs. It reads one message on stdin like
// `sendmail -t` and hands it to an SMTP server with nodemailer.
//
// MiniVM runs `( mailcmd < tmp ; rm -f tmp ) &` (app_minivm.c), so the message file is gone as soon
// as we return and nobody looks at our exit code. A message we have read is therefore never dropped:
// anything the server did not accept is written to the spool and `--flush` sends it later.

import { randomBytes } from 'node:crypto'
import { fstatSync } from 'node:fs'
import { mkdir, open, readdir, readFile, rm } from 'node:fs/promises'
import { join } from 'node:path'
import type { Readable } from 'node:stream'
import { parseArgs as parseArgv } from 'node:util'
import type { NodemailerError, SMTPTransportOptions } from 'nodemailer'
import addressparser from 'nodemailer/lib/addressparser'
import { writeFileAtomic } from '../base/atomic-write.ts'
import { ConfigError, EXIT, UsageError } from '../base/errors.ts'
import { createLogger, LEVELS, type Level, type Logger } from '../base/log.ts'

const NAME = 'minivm-send'

// sysexits.h: what sendmail returns when it queued a message it could not deliver yet.
export const EX_TEMPFAIL = 75

export const DEFAULT_SPOOL_DIR = '/var/spool/asterisk/minivm-outbox'
const DEFAULT_TIMEOUT_SECONDS = 30

export type Protocol = 'smtp' | 'smtps' | 'tls' | 'starttls'
const DEFAULT_PORT: Record<Protocol, number> = { smtp: 25, smtps: 465, tls: 465, starttls: 587 }

interface FlagSpec {
  type: 'string' | 'boolean'
  short?: string
  value?: string
  doc: string
  default: string
}

/** The command line: parsed by util.parseArgs and printed by --help from this one table. */
const FLAGS = {
  host: {
    type: 'string',
    short: 'H',
    value: 'HOST[:PORT]',
    doc: 'SMTP server; IPv6 as [ADDR]:PORT',
    default: 'required',
  },
  protocol: {
    type: 'string',
    short: 'P',
    value: 'PROTO',
    doc: 'smtp (plain), smtps or tls (TLS from the start), starttls (upgrade required)',
    default: 'starttls',
  },
  user: {
    type: 'string',
    short: 'u',
    value: 'USER',
    doc: 'log in as USER; the password comes from one of -p, --password-file, SMTP_PASSWORD_FILE, SMTP_PASSWORD',
    default: 'no login',
  },
  password: {
    type: 'string',
    short: 'p',
    value: 'PASSWORD',
    doc: 'password on the command line, visible in minivm.conf and ps; prefer a file or the environment',
    default: 'none',
  },
  'password-file': {
    type: 'string',
    value: 'FILE',
    doc: 'read the password from FILE (one trailing newline is dropped)',
    default: 'none',
  },
  from: { type: 'string', short: 'f', value: 'ADDRESS', doc: 'envelope sender', default: 'the From header' },
  'ca-file': {
    type: 'string',
    value: 'FILE',
    doc: 'trust the CA certificates (PEM) in FILE instead of the system CAs',
    default: 'system CAs',
  },
  insecure: { type: 'boolean', doc: 'do not verify the server certificate (a self-signed relay)', default: 'verify' },
  timeout: {
    type: 'string',
    value: 'SECONDS',
    doc: 'longest wait for the server at each step: connect, greeting, each reply',
    default: String(DEFAULT_TIMEOUT_SECONDS),
  },
  flush: {
    type: 'boolean',
    doc: 'send the queued messages instead of reading stdin; give the same flags as mailcmd',
    default: 'off',
  },
  help: { type: 'boolean', short: 'h', doc: 'print this help', default: 'off' },
} as const satisfies Record<string, FlagSpec>

type FlagName = keyof typeof FLAGS

const ENV_VARS = [
  { name: 'SMTP_PASSWORD', doc: 'password for -u', default: 'none' },
  { name: 'SMTP_PASSWORD_FILE', doc: 'file holding the password for -u', default: 'none' },
  { name: 'MINIVM_SPOOL_DIR', doc: 'where messages wait that the server did not accept', default: DEFAULT_SPOOL_DIR },
  { name: 'LOG_LEVEL', doc: LEVELS.join(', '), default: 'info' },
] as const

export function usage(): string {
  const flag = (name: FlagName): string => {
    const f: FlagSpec = FLAGS[name]
    return [f.short ? `-${f.short}, ` : '', `--${name}`, f.value ? ` ${f.value}` : ''].join('')
  }
  const names = Object.keys(FLAGS) as FlagName[]
  const width = Math.max(...names.map((n) => flag(n).length), ...ENV_VARS.map((e) => e.name.length)) + 2
  return [
    `Usage: ${NAME} -H HOST[:PORT] [-P PROTO] [-u USER] [-f ADDRESS] [options] < message`,
    `       ${NAME} --flush -H HOST[:PORT] [same options]`,
    '',
    'Sends the RFC 822 message on stdin like sendmail -t: recipients from To, Cc and Bcc, Bcc removed,',
    'a line holding only "." ends the message. What the server does not accept is queued in the spool.',
    '',
    'Options:',
    ...names.map((n) => `  ${flag(n).padEnd(width)}${FLAGS[n].doc} (default: ${FLAGS[n].default})`),
    '',
    'Environment:',
    ...ENV_VARS.map((e) => `  ${e.name.padEnd(width)}${e.doc} (default: ${e.default})`),
    '',
    `Exit codes: ${EXIT.ok} sent, ${EX_TEMPFAIL} queued for a later --flush (server unreachable or busy), ${EXIT.failure} not`,
    `accepted (kept in the spool), ${EXIT.usage} bad command line, ${EXIT.config} configuration error (kept in the spool).`,
  ].join('\n')
}

type PasswordSource =
  { from: '-p' | 'SMTP_PASSWORD'; value: string } | { from: '--password-file' | 'SMTP_PASSWORD_FILE'; file: string }

/** Connection settings as given; files named here are read per send, so a rotated secret is used. */
export interface SmtpSettings {
  host: string
  port: number
  protocol: Protocol
  user?: string
  /** Every place a password was given; more than one is refused when connecting. */
  passwords: PasswordSource[]
  /** Envelope sender from -f; the From header when unset. */
  from?: string
  caFile?: string
  insecure: boolean
  timeoutMs: number
}

export type Invocation =
  { mode: 'help' } | { mode: 'send' | 'flush'; smtp: SmtpSettings; spoolDir: string; logLevel: Level }

export type Env = Record<string, string | undefined>

function parseHostPort(value: string, protocol: Protocol): { host: string; port: number } {
  // [IPv6]:PORT, NAME:PORT, or a bare IPv6 address, whose colons leave no room for a port.
  const m =
    /^\[([\da-f:.]+)\](?::(.*))?$/i.exec(value) ??
    /^([\p{L}\p{N}._-]+)(?::(.*))?$/u.exec(value) ??
    /^([\da-f.]*:[\da-f.]*:[\da-f:.]*)$/i.exec(value)
  if (!m) throw new UsageError(`-H must be HOST[:PORT], e.g. mx.example.com:587, got \`${value}\``)
  const host = m[1]!
  const portText = m[2]
  if (portText === undefined) return { host, port: DEFAULT_PORT[protocol] }
  const port = /^\d{1,5}$/.test(portText) ? Number(portText) : NaN
  if (!(port >= 1 && port <= 65535))
    throw new UsageError(`-H port must be a number 1-65535, got \`${portText}\` in \`${value}\``)
  return { host, port }
}

function firstAddress(value: string): string | undefined {
  return addressparser(value, { flatten: true }).find((a) => a.address)?.address
}

/** Reads the command line and the environment; throws UsageError or ConfigError. No I/O. */
const spoolDirOf = (env: Env) => env.MINIVM_SPOOL_DIR || DEFAULT_SPOOL_DIR

/**
 * Whether stdin is a message handed over the way MiniVM does (`mailcmd < file`), which can be read
 * to its end without waiting on anyone; a terminal or an open pipe could keep us waiting for ever.
 * A stream without a descriptor (a test's) ends by itself.
 */
function handedAFile(stdin: Readable): boolean {
  const fd = (stdin as { fd?: unknown }).fd
  if (typeof fd !== 'number') return true
  try {
    return fstatSync(fd).isFile()
  } catch {
    return false
  }
}

export function parseArgs(argv: readonly string[], env: Env): Invocation {
  let values: Partial<Record<FlagName, string | boolean>>
  try {
    const options = Object.fromEntries(
      Object.entries(FLAGS).map(([k, f]: [string, FlagSpec]) => [
        k,
        { type: f.type, ...(f.short ? { short: f.short } : {}) },
      ]),
    )
    values = parseArgv({ args: [...argv], options, strict: true, allowPositionals: false }).values as typeof values
  } catch (err) {
    // sendmail takes recipients as arguments; we take them from the headers only, as with -t.
    const why = (err instanceof Error ? err.message : String(err)).replace(/\s*\n\s*/g, ' ')
    throw new UsageError(`${why} (see ${NAME} --help)`)
  }
  if (values.help) return { mode: 'help' }
  const str = (k: FlagName): string | undefined => (typeof values[k] === 'string' ? values[k] : undefined)

  const protocolText = str('protocol') ?? 'starttls'
  if (!(protocolText in DEFAULT_PORT))
    throw new UsageError(`-P must be one of ${Object.keys(DEFAULT_PORT).join(', ')}, got \`${protocolText}\``)
  const protocol = protocolText as Protocol

  const hostText = str('host')
  if (hostText === undefined)
    throw new UsageError(`-H is required: the SMTP server as HOST[:PORT], e.g. -H mx.example.com:587`)
  const { host, port } = parseHostPort(hostText, protocol)

  const timeoutText = str('timeout') ?? String(DEFAULT_TIMEOUT_SECONDS)
  const timeout = /^\d*\.?\d+$/.test(timeoutText) ? Number(timeoutText) : NaN
  if (!(timeout > 0)) throw new UsageError(`--timeout must be a positive number of seconds, got \`${timeoutText}\``)

  const user = str('user')
  if (user === '') throw new UsageError(`-u must be a user name, got an empty string`)
  const passwords: PasswordSource[] = []
  const flagPassword = str('password')
  const flagFile = str('password-file')
  if (flagPassword !== undefined) passwords.push({ from: '-p', value: flagPassword })
  if (flagFile !== undefined) passwords.push({ from: '--password-file', file: flagFile })
  if (passwords.length > 1)
    throw new UsageError(`the SMTP password is given more than once, by -p and --password-file: keep one`)
  if (passwords.length && user === undefined)
    throw new UsageError(
      `${passwords[0]!.from} needs -u: without a user name there is no login to use the password for`,
    )
  // The environment may carry a password meant for another relay setup; it only counts with -u.
  if (user !== undefined && env.SMTP_PASSWORD_FILE)
    passwords.push({ from: 'SMTP_PASSWORD_FILE', file: env.SMTP_PASSWORD_FILE })
  if (user !== undefined && env.SMTP_PASSWORD) passwords.push({ from: 'SMTP_PASSWORD', value: env.SMTP_PASSWORD })

  const fromText = str('from')
  const from = fromText === undefined ? undefined : firstAddress(fromText)
  if (fromText !== undefined && !from) throw new UsageError(`-f must be an e-mail address, got \`${fromText}\``)

  const logLevel = (env.LOG_LEVEL || 'info') as Level
  if (!LEVELS.includes(logLevel))
    throw new ConfigError([`LOG_LEVEL must be one of ${LEVELS.join(', ')}, got \`${env.LOG_LEVEL}\``])

  return {
    mode: values.flush ? 'flush' : 'send',
    smtp: {
      host,
      port,
      protocol,
      user,
      passwords,
      from,
      caFile: str('ca-file'),
      insecure: values.insecure === true,
      timeoutMs: timeout * 1000,
    },
    spoolDir: spoolDirOf(env),
    logLevel,
  }
}

/** The message itself is unusable; another server or setting would not help. */
export class MessageError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'MessageError'
  }
}

export interface ParsedMessage {
  envelope: { from: string; to: string[] }
  /** What goes over the wire: the input up to a lone "." line, without Bcc fields. */
  data: Buffer
  eightBit: boolean
}

/** Reads a message the way `sendmail -t` does. Pure; throws when there is no sender or recipient. */
export function parseMessage(input: Buffer, sender?: string): ParsedMessage {
  // latin1 maps bytes 1:1 to chars, so 8-bit content survives the round trip untouched.
  let text = input.toString('latin1')
  // MiniVM ends its messages with a "." line, which sendmail reads as the end of input.
  const dot = /(^|\n)\.\r?(?:\n|$)/.exec(text)
  if (dot) text = text.slice(0, dot.index + dot[1]!.length)

  const lines = text.split(/(?<=\n)/)
  const fields: string[] = []
  let i = 0
  for (; i < lines.length; i++) {
    const line = lines[i]!
    if (line === '\n' || line === '\r\n') break
    if (/^[ \t]/.test(line) && fields.length) fields[fields.length - 1] += line
    else fields.push(line)
  }
  const body = lines.slice(i).join('')

  const nameOf = (field: string) => /^([^:\s]+)\s*:/.exec(field)?.[1]?.toLowerCase()
  const valueOf = (field: string) =>
    Buffer.from(field.slice(field.indexOf(':') + 1).replace(/\r?\n/g, ''), 'latin1').toString('utf8')
  const addresses = (names: string[]) =>
    fields
      .filter((f) => names.includes(nameOf(f) ?? ''))
      .flatMap((f) =>
        addressparser(valueOf(f), { flatten: true })
          .map((a) => a.address)
          .filter((a) => a),
      )

  const to = [...new Set(addresses(['to', 'cc', 'bcc']))]
  if (!to.length)
    throw new MessageError('the message has no recipients: expected addresses in its To, Cc or Bcc header')
  const from = sender ?? addresses(['from'])[0]
  if (!from) throw new MessageError('the message has no sender: expected a From header with an address, or give -f')

  const data = fields.filter((f) => nameOf(f) !== 'bcc').join('') + body
  return { envelope: { from, to }, data: Buffer.from(data, 'latin1'), eightBit: /[\x80-\xff]/.test(data) }
}

/** Settings with the secrets read, ready to connect. */
interface Connection extends SmtpSettings {
  password?: string
  ca?: Buffer
}

async function readNamedFile(file: string, what: string): Promise<string> {
  try {
    return await readFile(file, 'utf8')
  } catch (err) {
    throw new ConfigError([`reading ${what} ${file}: ${err instanceof Error ? err.message : String(err)}`], {
      cause: err,
    })
  }
}

/** Reads the password and CA files; throws ConfigError naming the file or the conflicting sources. */
async function resolveConnection(smtp: SmtpSettings): Promise<Connection> {
  const conn: Connection = { ...smtp }
  if (smtp.passwords.length > 1) {
    throw new ConfigError([
      `the SMTP password is given more than once, by ${smtp.passwords.map((p) => p.from).join(' and ')}: keep one`,
    ])
  }
  const source = smtp.passwords[0]
  if (smtp.user !== undefined && !source) {
    throw new ConfigError([
      `SMTP user "${smtp.user}" has no password: set SMTP_PASSWORD_FILE or SMTP_PASSWORD, or give --password-file`,
    ])
  }
  if (source) {
    // Secret files end with the newline editors add; it is not part of the password.
    conn.password =
      'value' in source
        ? source.value
        : (await readNamedFile(source.file, `the SMTP password file (${source.from})`)).replace(/\r?\n$/, '')
    if (!conn.password) throw new ConfigError([`the SMTP password from ${source.from} is empty`])
  }
  if (smtp.caFile) conn.ca = Buffer.from(await readNamedFile(smtp.caFile, 'the --ca-file'))
  return conn
}

function transportOptions(conn: Connection): SMTPTransportOptions {
  const implicitTls = conn.protocol === 'smtps' || conn.protocol === 'tls'
  return {
    host: conn.host,
    port: conn.port,
    secure: implicitTls,
    requireTLS: conn.protocol === 'starttls',
    // -P smtp means plain: a STARTTLS offer with a certificate we cannot verify must not fail the mail.
    ignoreTLS: conn.protocol === 'smtp',
    tls: { rejectUnauthorized: !conn.insecure, ...(conn.ca ? { ca: conn.ca } : {}) },
    ...(conn.user !== undefined ? { auth: { user: conn.user, pass: conn.password }, forceAuth: true } : {}),
    // Per wait, not for the whole transfer: a long recording over a slow home uplink may take minutes.
    connectionTimeout: conn.timeoutMs,
    greetingTimeout: conn.timeoutMs,
    socketTimeout: conn.timeoutMs,
    dnsTimeout: conn.timeoutMs,
    logger: false,
  }
}

interface Mailer {
  send(message: ParsedMessage): Promise<{ response: string; rejected: string[] }>
  close(): void
}

async function createMailer(conn: Connection, log: Logger): Promise<Mailer> {
  const verify = conn.protocol === 'smtp' ? 'no TLS' : conn.insecure ? 'off' : conn.ca ? 'ca-file' : 'system CAs'
  log.debug('SMTP connection', {
    server: serverName(conn),
    protocol: conn.protocol,
    user: conn.user,
    verify,
    timeout_s: conn.timeoutMs / 1000,
  })
  if (conn.protocol === 'smtp' && conn.user !== undefined)
    log.warn('the SMTP password goes unencrypted with -P smtp', { server: serverName(conn), user: conn.user })
  // Loaded here: run imports this module for the spool, and most flushes find nothing to send.
  const { default: nodemailer } = await import('nodemailer')
  const transport = nodemailer.createTransport(transportOptions(conn))
  return {
    async send(message) {
      const info = await transport.sendMail({
        raw: message.data,
        envelope: { from: message.envelope.from, to: message.envelope.to, use8BitMime: message.eightBit },
      })
      return { response: info.response, rejected: info.rejected }
    },
    close: () => transport.close(),
  }
}

function serverName(smtp: Pick<SmtpSettings, 'host' | 'port'>): string {
  return `${smtp.host.includes(':') ? `[${smtp.host}]` : smtp.host}:${smtp.port}`
}

// Node's names for a certificate it refused; nodemailer reports them as ESOCKET like a refused connection.
const CERT_ERRORS = new Set([
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_REJECTED',
  'CERT_REVOKED',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'HOSTNAME_MISMATCH',
  'INVALID_CA',
  'INVALID_PURPOSE',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
])

export interface Failure {
  problem: string
  /** Likely to go through later without anyone changing anything. */
  transient: boolean
  /** About this message only; otherwise every message would fail the same way. */
  messageOnly: boolean
  exitCode: number
}

/** Turns what went wrong into one line naming the server, user or file, and how to fix it. */
function describeFailure(err: unknown, smtp: SmtpSettings, password?: string): Failure {
  const where = serverName(smtp)
  const e = (err instanceof Error ? err : new Error(String(err))) as NodemailerError
  const said = e.response ? ` (${e.response})` : ''
  const cause = e.originalCode ?? e.code
  let f: Omit<Failure, 'exitCode'>
  if (err instanceof ConfigError) {
    f = { problem: err.message, transient: false, messageOnly: false }
  } else if (err instanceof MessageError) {
    f = { problem: err.message, transient: false, messageOnly: true }
  } else if (e.code === 'EAUTH') {
    f = {
      problem: `SMTP authentication failed for user "${smtp.user}" at ${where}${said || ` (${e.message})`}`,
      transient: e.permanent === false,
      messageOnly: false,
    }
  } else if (cause && CERT_ERRORS.has(cause)) {
    const why = e.message.split(';')[0]
    f = {
      problem: `the TLS certificate of ${where} is not trusted (${why}, ${cause}): give its CA with --ca-file, or --insecure to skip the check`,
      transient: false,
      messageOnly: false,
    }
  } else if (cause?.startsWith('ERR_SSL')) {
    f = {
      problem: `TLS with ${where} failed (${cause}): check -P, smtps and tls expect TLS from the first byte, starttls upgrades a plain connection`,
      transient: false,
      messageOnly: false,
    }
  } else if (e.code === 'ETIMEDOUT') {
    const within = `within ${smtp.timeoutMs / 1000} s`
    // Silence before the first reply is also what a port expecting TLS from the first byte gives a plain client.
    const hint =
      e.command === 'CONN' && smtp.protocol !== 'smtps' && smtp.protocol !== 'tls'
        ? `; if ${where} expects TLS from the first byte, use -P smtps`
        : ''
    const problem =
      e.timeoutType === 'CONNECT_TIMEOUT'
        ? `cannot connect to ${where} ${within}`
        : `no answer from ${where} ${within}${hint}`
    f = { problem, transient: true, messageOnly: false }
  } else if (e.code === 'EDNS') {
    f = { problem: `cannot resolve the SMTP server name ${smtp.host} (${cause})`, transient: true, messageOnly: false }
  } else if (e.responseCode !== undefined) {
    const transient = e.permanent === false
    const step = e.command ? ` at ${e.command}` : ''
    f = {
      problem: `${where} refused the message${step}${said}`,
      transient,
      messageOnly: e.code === 'EENVELOPE' || e.code === 'EMESSAGE',
    }
  } else if (e.code === 'ESOCKET' || e.code === 'ECONNECTION') {
    f = { problem: `cannot talk to ${where} (${e.originalCode ?? e.message})`, transient: true, messageOnly: false }
  } else {
    f = { problem: `sending to ${where} failed (${e.code}: ${e.message})`, transient: false, messageOnly: false }
  }
  // A server may echo what it was sent; the password must not reach a log even then.
  let problem = f.problem.replace(/\s*[\r\n]+\s*/g, ' ').trim()
  if (password) problem = problem.split(password).join('***')
  return { ...f, problem, exitCode: err instanceof ConfigError ? EXIT.config : EXIT.failure }
}

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk)
  return Buffer.concat(chunks)
}

const SPOOL_SUFFIX = '.eml'

/** Keeps the message as read, Bcc included, so a later flush sends exactly what would have been sent. */
export async function spoolMessage(dir: string, input: Buffer, now: Date): Promise<string> {
  await mkdir(dir, { recursive: true, mode: 0o700 })
  // Names sort by arrival, so --flush sends in the order the voicemails were left.
  const file = join(dir, `${now.toISOString().replace(/[-:]/g, '')}-${randomBytes(4).toString('hex')}${SPOOL_SUFFIX}`)
  await writeFileAtomic(file, input, { mode: 0o600 })
  return file
}

async function queuedFiles(dir: string): Promise<string[]> {
  const names = await readdir(dir).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return []
    throw err
  })
  return names
    .filter((n) => n.endsWith(SPOOL_SUFFIX) && !n.startsWith('.'))
    .sort()
    .map((n) => join(dir, n))
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** One flush at a time: the supervisor's timer and a manual --flush must not send a message twice. */
async function lockSpool(dir: string): Promise<{ release: () => Promise<void> } | { busy: number }> {
  const file = join(dir, '.flush.lock')
  for (let attempt = 0; ; attempt++) {
    try {
      const fh = await open(file, 'wx', 0o600)
      await fh.writeFile(String(process.pid))
      await fh.close()
      return { release: () => rm(file, { force: true }) }
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || attempt > 0) throw err
      const pid = Number((await readFile(file, 'utf8').catch(() => '')).trim())
      if (Number.isInteger(pid) && pid > 0 && isAlive(pid)) return { busy: pid }
      // Left by a flush that died; its messages are still in the spool.
      await rm(file, { force: true })
    }
  }
}

export interface FlushResult {
  /** Pid of the flush already running; nothing was done. */
  busy?: number
  sent: string[]
  failures: Array<{ file: string } & Failure>
  /** Queued files not sent, tried or not. */
  left: string[]
}

/**
 * Sends every queued message with the mailcmd's settings, oldest first, and removes each one only
 * after the server accepted it. Stops at the first failure that is not about one message, since the
 * rest would fail the same way.
 */
export async function flushSpool(smtp: SmtpSettings, opts: { spoolDir: string; log: Logger }): Promise<FlushResult> {
  const { spoolDir, log } = opts
  const files = await queuedFiles(spoolDir)
  const result: FlushResult = { sent: [], failures: [], left: [] }
  if (!files.length) {
    log.debug('spool is empty', { dir: spoolDir })
    return result
  }
  const lock = await lockSpool(spoolDir)
  if ('busy' in lock) {
    log.info('another flush is running; leaving the spool to it', { dir: spoolDir, pid: lock.busy })
    return { ...result, busy: lock.busy, left: files }
  }
  log.info('sending queued messages', { dir: spoolDir, count: files.length, server: serverName(smtp) })
  let mailer: Mailer | undefined
  let password: string | undefined
  try {
    let stopped = false
    for (const file of files) {
      if (stopped) {
        result.left.push(file)
        continue
      }
      const input = await readFile(file).catch((err: NodeJS.ErrnoException) => {
        if (err.code === 'ENOENT') return undefined
        throw err
      })
      if (!input) continue // sent by a flush that held the lock before us
      try {
        if (!mailer) {
          const conn = await resolveConnection(smtp)
          password = conn.password
          mailer = await createMailer(conn, log)
        }
        const message = parseMessage(input, smtp.from)
        const info = await mailer.send(message)
        result.sent.push(file)
        log.info('queued message sent', {
          file,
          from: message.envelope.from,
          to: message.envelope.to.join(','),
          response: info.response,
        })
        if (info.rejected.length)
          log.warn('server refused some recipients', { file, rejected: info.rejected.join(',') })
        await rm(file).catch((err: Error) =>
          log.error('queued message sent but not removed; the next flush sends it again', { file, error: err.message }),
        )
      } catch (err) {
        const failure = describeFailure(err, smtp, password)
        result.failures.push({ file, ...failure })
        result.left.push(file)
        const fields = { file, problem: failure.problem }
        if (failure.transient) log.warn('queued message not sent; will retry', fields)
        else log.error('queued message not accepted; it stays in the spool until removed by hand', fields)
        stopped = !failure.messageOnly
      }
    }
  } finally {
    mailer?.close()
    await lock.release()
  }
  log.info('flush done', { dir: spoolDir, sent: result.sent.length, left: result.left.length })
  return result
}

export interface Io {
  stdin: Readable
  stdout: (text: string) => void
  stderr: (text: string) => void
  now: () => Date
  /** Overrides the LOG_LEVEL logger on stdout, for tests. */
  log?: Logger
}

async function sendStdin(smtp: SmtpSettings, spoolDir: string, io: Io, log: Logger): Promise<number> {
  const input = await readAll(io.stdin)
  if (!input.length) {
    io.stderr(`${NAME}: no message on stdin: expected an RFC 822 message, headers then a blank line then the body`)
    return EXIT.failure
  }
  let password: string | undefined
  try {
    const conn = await resolveConnection(smtp)
    password = conn.password
    const message = parseMessage(input, smtp.from)
    const mailer = await createMailer(conn, log)
    try {
      const info = await mailer.send(message)
      log.info('message sent', {
        server: serverName(smtp),
        from: message.envelope.from,
        to: message.envelope.to.join(','),
        response: info.response,
      })
      if (info.rejected.length) log.warn('server refused some recipients', { rejected: info.rejected.join(',') })
    } finally {
      mailer.close()
    }
    return EXIT.ok
  } catch (err) {
    const failure = describeFailure(err, smtp, password)
    let file: string
    try {
      file = await spoolMessage(spoolDir, input, io.now())
    } catch (spoolErr) {
      const why = spoolErr instanceof Error ? spoolErr.message : String(spoolErr)
      io.stderr(`${NAME}: ${failure.problem}; queueing it in ${spoolDir} failed too (${why}): the message is lost`)
      return failure.exitCode
    }
    const verb = failure.transient
      ? `queued as ${file}; ${NAME} --flush sends it`
      : `kept as ${file}; fix the cause, then ${NAME} --flush sends it`
    io.stderr(`${NAME}: ${failure.problem}; ${verb}`)
    return failure.transient ? EX_TEMPFAIL : failure.exitCode
  }
}

/** The whole command: returns the exit code, so only the main guard below touches the process. */
export async function run(argv: readonly string[], env: Env, io: Io): Promise<number> {
  let inv: Invocation
  try {
    inv = parseArgs(argv, env)
  } catch (err) {
    const code = err instanceof UsageError || err instanceof ConfigError ? err.exitCode : EXIT.failure
    const why = `${NAME}: ${err instanceof Error ? err.message : String(err)}`
    // MiniVM deletes its message as soon as we return: a typo in mailcmd must not cost it. The
    // spool flush (privatedial run, every 5 min) reports the same error until mailcmd is fixed.
    const mail =
      argv.includes('--flush') || argv.includes('--help') || !handedAFile(io.stdin)
        ? undefined
        : await readAll(io.stdin).catch(() => undefined)
    if (!mail?.length) {
      io.stderr(why)
      return code
    }
    const spoolDir = spoolDirOf(env)
    try {
      io.stderr(
        `${why}; kept as ${await spoolMessage(spoolDir, mail, io.now())}: fix mailcmd in minivm.conf, then ${NAME} --flush sends it`,
      )
    } catch (spoolErr) {
      io.stderr(
        `${why}; queueing it in ${spoolDir} failed too (${spoolErr instanceof Error ? spoolErr.message : String(spoolErr)}): the message is lost`,
      )
    }
    return code
  }
  if (inv.mode === 'help') {
    io.stdout(usage() + '\n')
    return EXIT.ok
  }
  const log = io.log ?? createLogger({ component: NAME, level: inv.logLevel })
  try {
    if (inv.mode === 'send') return await sendStdin(inv.smtp, inv.spoolDir, io, log)
    const r = await flushSpool(inv.smtp, { spoolDir: inv.spoolDir, log })
    const first = r.failures[0]
    if (!first || r.busy !== undefined) return EXIT.ok
    io.stderr(`${NAME}: ${r.left.length} queued message(s) in ${inv.spoolDir} not sent: ${first.problem}`)
    if (r.failures.some((f) => f.exitCode === EXIT.config)) return EXIT.config
    return r.failures.every((f) => f.transient) ? EX_TEMPFAIL : EXIT.failure
  } catch (err) {
    // Failures of sending are handled above; this is stdin or the spool itself.
    const doing = inv.mode === 'send' ? 'reading the message from stdin' : `flushing ${inv.spoolDir}`
    io.stderr(`${NAME}: ${doing}: ${err instanceof Error ? err.message : String(err)}`)
    return EXIT.failure
  }
}

/** The executable's whole job (bin/minivm-send.js): the process's own streams and exit. */
export async function main(): Promise<never> {
  const code = await run(process.argv.slice(2), process.env, {
    stdin: process.stdin,
    stdout: (text) => process.stdout.write(text),
    stderr: (line) => process.stderr.write(line + '\n'),
    now: () => new Date(),
  })
  process.exit(code)
}
