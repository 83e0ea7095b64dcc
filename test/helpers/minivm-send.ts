// Driving minivm-send the way its tests need: the whole command in-process with its streams
// captured, the spool's contents, and the sample messages the tests send.
import { existsSync } from 'node:fs'
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { Readable } from 'node:stream'
import { memoryLogger } from '../../src/base/log.ts'
import { parseArgs, run } from '../../src/mail/minivm-send.ts'
import type { SmtpSettings } from '../../src/mail/smtp.ts'
import { FAILED_DIR, type Env } from '../../src/mail/spool.ts'

/** The messages waiting in a spool (or in its failed/), by file name. */
export async function queued(dir: string): Promise<string[]> {
  return existsSync(dir) ? (await readdir(dir)).filter((n) => n.endsWith('.eml')) : []
}
export const failed = (spool: string): Promise<string[]> => queued(join(spool, FAILED_DIR))

/** minivm-send with these arguments, stdin and environment; the spool is MINIVM_SPOOL_DIR. */
export async function cli(args: string[], opts: { spool: string; input?: string | Buffer; env?: Env }) {
  const stderr: string[] = []
  let stdout = ''
  const log = memoryLogger('minivm-send')
  const code = await run(
    args,
    { MINIVM_SPOOL_DIR: opts.spool, ...opts.env },
    {
      stdin: Readable.from([Buffer.from(opts.input ?? '')]),
      stdout: (text) => (stdout += text),
      stderr: (line) => stderr.push(line),
      now: () => new Date(),
      log,
    },
  )
  return { code, stderr, stdout, log: log.lines }
}

/** The SMTP settings a mailcmd with these flags sends with. */
export function smtpOf(args: string[], env: Env = {}): SmtpSettings {
  const inv = parseArgs(args, env)
  if (inv.mode === 'help') throw new Error(`${args.join(' ')} asks for help, not for a send`)
  return inv.smtp
}

/** The bytes a server receives for a message: lines ended with CRLF, as SMTP carries them. */
export const onTheWire = (s: string): Buffer => Buffer.from(s.replace(/\r?\n/g, '\r\n'), 'utf8')

export const SIMPLE = [
  'From: "PBX; =>" <pbx@example.com>',
  'To: "Doe, John \\"JD\\"" <john@example.net>,',
  '  jane@example.net',
  'Bcc: archive@example.org,',
  '\tsecret-archive@example.org',
  'Subject: New voicemail',
  'Message-ID: <minivm-1@example.com>',
  '',
  'You have a new message.',
  '',
].join('\n')
export const SIMPLE_SENT = SIMPLE.replace('Bcc: archive@example.org,\n\tsecret-archive@example.org\n', '')
export const SIMPLE_RCPTS = [
  'john@example.net',
  'jane@example.net',
  'archive@example.org',
  'secret-archive@example.org',
]
