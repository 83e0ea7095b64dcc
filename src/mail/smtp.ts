// The SMTP side of minivm-send: connection settings as given on mailcmd, the secrets they name
// read at send time, and one nodemailer transport per run (one connection per message).
import { readFile } from 'node:fs/promises'
import type { SMTPTransportOptions } from 'nodemailer'
import { ConfigError } from '../base/errors.ts'
import type { Logger } from '../base/log.ts'
import type { ParsedMessage } from './message.ts'

export type Protocol = 'smtp' | 'smtps' | 'tls' | 'starttls'
export const DEFAULT_PORT: Record<Protocol, number> = { smtp: 25, smtps: 465, tls: 465, starttls: 587 }

export type PasswordSource =
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

/** Settings with the secrets read, ready to connect. */
export interface Connection extends SmtpSettings {
  password?: string
  ca?: Buffer
  /** -u was given without any password, so no login is tried (see resolveConnection). */
  loginSkipped?: boolean
}

export function serverName(smtp: Pick<SmtpSettings, 'host' | 'port'>): string {
  return `${smtp.host.includes(':') ? `[${smtp.host}]` : smtp.host}:${smtp.port}`
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
export async function resolveConnection(smtp: SmtpSettings): Promise<Connection> {
  const conn: Connection = { ...smtp }
  if (smtp.passwords.length > 1) {
    throw new ConfigError([
      `the SMTP password is given more than once, by ${smtp.passwords.map((p) => p.from).join(' and ')}: keep one`,
    ])
  }
  const source = smtp.passwords[0]
  // A user name with no password anywhere is most often a placeholder left in mailcmd, with a
  // relay that needs no login (the older shipped minivm.conf had `-u username`). Refusing would
  // hold every voicemail; so no login is tried, and a server that wants one says so (describeFailure).
  if (smtp.user !== undefined && !source) conn.loginSkipped = true
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
  const login = conn.user !== undefined && conn.password !== undefined
  return {
    host: conn.host,
    port: conn.port,
    secure: implicitTls,
    requireTLS: conn.protocol === 'starttls',
    // -P smtp means plain: a STARTTLS offer with a certificate we cannot verify must not fail the mail.
    ignoreTLS: conn.protocol === 'smtp',
    tls: { rejectUnauthorized: !conn.insecure, ...(conn.ca ? { ca: conn.ca } : {}) },
    ...(login ? { auth: { user: conn.user, pass: conn.password }, forceAuth: true } : {}),
    // Per wait, not for the whole transfer: a long recording over a slow home uplink may take minutes.
    connectionTimeout: conn.timeoutMs,
    greetingTimeout: conn.timeoutMs,
    socketTimeout: conn.timeoutMs,
    dnsTimeout: conn.timeoutMs,
    logger: false,
  }
}

export interface Mailer {
  /** An abort closes the connection before the server's final reply, so the server keeps nothing. */
  send(message: ParsedMessage, signal?: AbortSignal): Promise<{ response: string; rejected: string[] }>
  close(): void
}

export async function createMailer(conn: Connection, log: Logger): Promise<Mailer> {
  const verify = conn.protocol === 'smtp' ? 'no TLS' : conn.insecure ? 'off' : conn.ca ? 'ca-file' : 'system CAs'
  log.debug('SMTP connection', {
    server: serverName(conn),
    protocol: conn.protocol,
    user: conn.user,
    verify,
    timeout_s: conn.timeoutMs / 1000,
  })
  if (conn.loginSkipped)
    log.warn(
      `-u ${conn.user} has no password (no -p, --password-file, SMTP_PASSWORD_FILE or SMTP_PASSWORD): sending without login`,
      { server: serverName(conn), user: conn.user },
    )
  else if (conn.protocol === 'smtp' && conn.user !== undefined)
    log.warn('the SMTP password goes unencrypted with -P smtp', { server: serverName(conn), user: conn.user })
  // Loaded here: run imports the spool code, and most flushes find nothing to send.
  const { default: nodemailer } = await import('nodemailer')
  const transport = nodemailer.createTransport(transportOptions(conn))
  return {
    async send(message, signal) {
      const info = await transport.sendMail({
        raw: message.data,
        envelope: { from: message.envelope.from, to: message.envelope.to, use8BitMime: message.eightBit },
        ...(signal ? { signal } : {}),
      })
      return { response: info.response, rejected: info.rejected }
    },
    close: () => transport.close(),
  }
}
