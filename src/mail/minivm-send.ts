// minivm-send: the mailer minivm.conf's mailcmd runs. It reads one message on stdin like
// `sendmail -t` and hands it to an SMTP server with nodemailer.
//
// MiniVM runs `( mailcmd < tmp ; rm -f tmp ) &` (app_minivm.c), so the message file is gone as soon
// as we return and nobody looks at our exit code. A message we have read is therefore never dropped:
// anything the server did not accept is written to the spool and `--flush` sends it later, except
// what the server refused for good, which goes to the spool's failed/ folder and is not retried.

import { fstatSync } from 'node:fs'
import type { Readable } from 'node:stream'
import { parseArgs as parseArgv } from 'node:util'
import { ConfigError, EXIT, mustBe, UsageError } from '../base/errors.ts'
import { splitHostPort } from '../base/host-port.ts'
import { settingByName } from '../config/settings.ts'
import { createLogger, type Level, type Logger } from '../base/log.ts'
import { describeFailure, isRefusal } from './failure.ts'
import { flushSpool } from './flush.ts'
import { firstAddress, parseMessage } from './message.ts'
import {
  createMailer,
  DEFAULT_PORT,
  resolveConnection,
  serverName,
  type Connection,
  type PasswordSource,
  type Protocol,
  type SmtpSettings,
} from './smtp.ts'
import { failMessage, spoolDirOf, spoolMessage, type Env } from './spool.ts'

const NAME = 'minivm-send'

// sysexits.h: what sendmail returns when it queued a message it could not deliver yet.
export const EX_TEMPFAIL = 75

const DEFAULT_TIMEOUT_SECONDS = 30

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

// The variables minivm-send reads, documented from the one settings table run and --help use.
const ENV_VARS = ['SMTP_PASSWORD', 'MINIVM_SPOOL_DIR', 'LOG_LEVEL'].flatMap((name) => {
  const s = settingByName(name)
  const one = { name, doc: `${s.doc} (${s.allowed})`, default: s.default }
  return s.secret ? [one, { ...one, name: `${name}_FILE`, doc: `a file holding ${name}` }] : [one]
})

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
    `accepted (kept in the spool; refused for good: moved to its failed/), ${EXIT.usage} bad command line (kept in`,
    `the spool), ${EXIT.config} configuration error (kept in the spool). -u without any password sends without login.`,
  ].join('\n')
}

export type Invocation =
  { mode: 'help' } | { mode: 'send' | 'flush'; smtp: SmtpSettings; spoolDir: string; logLevel: Level }

function parseHostPort(value: string, protocol: Protocol): { host: string; port: number } {
  const hp = splitHostPort(value)
  if (!hp?.host) throw new UsageError(mustBe('-H', 'HOST[:PORT], e.g. mx.example.com:587', value))
  if (hp.port === undefined) return { host: hp.host, port: DEFAULT_PORT[protocol] }
  const port = /^\d{1,5}$/.test(hp.port) ? Number(hp.port) : NaN
  if (!(port >= 1 && port <= 65535))
    throw new UsageError(`${mustBe('-H port', 'a number 1-65535', hp.port)} in \`${value}\``)
  return { host: hp.host, port }
}

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

/** Reads the command line and the environment; throws UsageError or ConfigError. No I/O. */
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

  const levelSetting = settingByName('LOG_LEVEL')
  const parsedLevel = levelSetting.parse(env.LOG_LEVEL || levelSetting.value!)
  if ('error' in parsedLevel) throw new ConfigError([mustBe('LOG_LEVEL', levelSetting.allowed, env.LOG_LEVEL ?? '')])
  const logLevel = parsedLevel.ok as Level

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

async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = []
  for await (const chunk of stream) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk)
  return Buffer.concat(chunks)
}

export interface Io {
  stdin: Readable
  stdout: (text: string) => void
  stderr: (text: string) => void
  now: () => Date
  /** Overrides the LOG_LEVEL logger on stdout, for tests. */
  log?: Logger
}

/**
 * Writes a message we could not send where it is not lost (the spool, or failed/ when the server
 * refused it for good) and returns the one stderr line: `why`, then what became of it.
 */
async function keep(
  input: Buffer,
  where: { spoolDir: string; failed?: boolean },
  why: string,
  fate: (file: string) => string,
  io: Io,
): Promise<string> {
  try {
    const file = await (where.failed ? failMessage : spoolMessage)(where.spoolDir, input, io.now())
    return `${why}; ${fate(file)}`
  } catch (err) {
    return `${why}; queueing it in ${where.spoolDir} failed too (${err instanceof Error ? err.message : String(err)}): the message is lost`
  }
}

async function sendStdin(smtp: SmtpSettings, spoolDir: string, io: Io, log: Logger): Promise<number> {
  const input = await readAll(io.stdin)
  if (!input.length) {
    io.stderr(`${NAME}: no message on stdin: expected an RFC 822 message, headers then a blank line then the body`)
    return EXIT.failure
  }
  let conn: Omit<Connection, 'passwords'> = smtp
  let to: string | undefined
  try {
    const resolved = await resolveConnection(smtp)
    conn = resolved
    const message = parseMessage(input, smtp.from)
    to = message.envelope.to.join(',')
    const mailer = await createMailer(resolved, log)
    try {
      const info = await mailer.send(message)
      log.info('message sent', {
        server: serverName(smtp),
        from: message.envelope.from,
        to,
        response: info.response,
      })
      if (info.rejected.length) log.warn('server refused some recipients', { rejected: info.rejected.join(',') })
    } finally {
      mailer.close()
    }
    return EXIT.ok
  } catch (err) {
    const failure = describeFailure(err, conn)
    if (isRefusal(failure)) {
      io.stderr(
        await keep(
          input,
          { spoolDir, failed: true },
          `${NAME}: ${to ? `to ${to}: ` : ''}${failure.problem}`,
          (file) => `moved to ${file}, it is not retried`,
          io,
        ),
      )
      return failure.exitCode
    }
    const fate = (file: string) =>
      failure.transient
        ? `queued as ${file}; ${NAME} --flush sends it`
        : `kept as ${file}; fix the cause, then ${NAME} --flush sends it`
    io.stderr(await keep(input, { spoolDir }, `${NAME}: ${failure.problem}`, fate, io))
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
    io.stderr(
      await keep(
        mail,
        { spoolDir: spoolDirOf(env) },
        why,
        (file) => `kept as ${file}: fix mailcmd in minivm.conf, then ${NAME} --flush sends it`,
        io,
      ),
    )
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
    const failed = r.failed.length ? `, ${r.failed.length} moved to failed/` : ''
    io.stderr(`${NAME}: ${r.left.length} queued message(s) in ${inv.spoolDir} not sent${failed}: ${first.problem}`)
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
