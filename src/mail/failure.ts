// What went wrong with a send, as one line naming the server, user or file and how to fix it,
// and what to do with the message: retry it later, keep it until someone fixes a setting, or
// give up on it (a refusal of this message that retrying would only get again).
import type { NodemailerError } from 'nodemailer'
import { ConfigError, EXIT } from '../base/errors.ts'
import { MessageError } from './message.ts'
import { serverName, type Connection } from './smtp.ts'

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

/** A refusal of this one message that no retry and no setting would change: it goes to failed/. */
export const isRefusal = (f: Failure): boolean => f.messageOnly && !f.transient

/**
 * Turns what went wrong into one line naming the server, user or file, and how to fix it. `conn`
 * is what was used to connect, or the settings alone when reading the secrets failed.
 */
export function describeFailure(err: unknown, conn: Omit<Connection, 'passwords'>): Failure {
  const where = serverName(conn)
  const e = (err instanceof Error ? err : new Error(String(err))) as NodemailerError
  const said = e.response ? ` (${e.response})` : ''
  const cause = e.originalCode ?? e.code
  let f: Omit<Failure, 'exitCode'>
  if (err instanceof ConfigError) {
    f = { problem: err.message, transient: false, messageOnly: false }
  } else if (err instanceof MessageError) {
    f = { problem: err.message, transient: false, messageOnly: true }
  } else if (e.code === 'EABORT') {
    f = {
      problem: `sending to ${where} was stopped before the server accepted it`,
      transient: true,
      messageOnly: false,
    }
  } else if (e.code === 'EAUTH') {
    f = {
      problem: `SMTP authentication failed for user "${conn.user}" at ${where}${said || ` (${e.message})`}`,
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
    const within = `within ${conn.timeoutMs / 1000} s`
    // Silence before the first reply is also what a port expecting TLS from the first byte gives a plain client.
    const hint =
      e.command === 'CONN' && conn.protocol !== 'smtps' && conn.protocol !== 'tls'
        ? `; if ${where} expects TLS from the first byte, use -P smtps`
        : ''
    const problem =
      e.timeoutType === 'CONNECT_TIMEOUT'
        ? `cannot connect to ${where} ${within}`
        : `no answer from ${where} ${within}${hint}`
    f = { problem, transient: true, messageOnly: false }
  } else if (e.code === 'EDNS') {
    f = { problem: `cannot resolve the SMTP server name ${conn.host} (${cause})`, transient: true, messageOnly: false }
  } else if (e.responseCode !== undefined) {
    const transient = e.permanent === false
    const step = e.command ? ` at ${e.command}` : ''
    const refused = `${where} refused the message${step}${said}`
    const messageOnly = e.code === 'EENVELOPE' || e.code === 'EMESSAGE'
    if (!transient && messageOnly && conn.loginSkipped) {
      // Without the login the user named, a refusal is far likelier about that than this message.
      f = {
        problem: `${refused}; -u ${conn.user} has no password, so no login was tried: set SMTP_PASSWORD_FILE or SMTP_PASSWORD, or remove -u`,
        transient: false,
        messageOnly: false,
      }
    } else if (e.responseCode === 530) {
      f = {
        problem: `${refused}; the server wants a login: give -u (SMTP_USER) and a password (SMTP_PASSWORD_FILE or SMTP_PASSWORD)`,
        transient: false,
        messageOnly: false,
      }
    } else {
      f = { problem: refused, transient, messageOnly }
    }
  } else if (e.code === 'ESOCKET' || e.code === 'ECONNECTION') {
    f = { problem: `cannot talk to ${where} (${e.originalCode ?? e.message})`, transient: true, messageOnly: false }
  } else {
    f = { problem: `sending to ${where} failed (${e.code}: ${e.message})`, transient: false, messageOnly: false }
  }
  // A server may echo what it was sent; the password must not reach a log even then.
  let problem = f.problem.replace(/\s*[\r\n]+\s*/g, ' ').trim()
  if (conn.password) problem = problem.split(conn.password).join('***')
  return { ...f, problem, exitCode: err instanceof ConfigError ? EXIT.config : EXIT.failure }
}
