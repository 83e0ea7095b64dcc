// What `privatedial check` says about voicemail mail beyond what Asterisk reads: a mailcmd that
// minivm-send would refuse to run (a problem: every voicemail e-mail then waits in the spool),
// and, as warnings, a login with no password and the mails that wait or were refused for good.
import { join } from 'node:path'
import { ConfigError, UsageError } from '../base/errors.ts'
import { sections } from '../config/conf.ts'
import { readConf } from '../config/files.ts'
import { isMinivmSend, mailcmdWords } from '../config/mailcmd.ts'
import { parseArgs } from './minivm-send.ts'
import { FAILED_DIR, messagesIn, spoolDirOf, type Env } from './spool.ts'

export interface MailStatus {
  problems: string[]
  warnings: string[]
}

/** `20261201T081428.788Z-c0b62dd8.eml`, as spoolMessage names it, back to its ISO time. */
function queuedAt(file: string): string | undefined {
  const m = /(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})\.\d{3}Z-[0-9a-f]+\.eml$/.exec(file)
  return m ? `${m[1]}-${m[2]}-${m[3]} ${m[4]}:${m[5]}:${m[6]} UTC` : undefined
}

async function mailcmdStatus(confDir: string, env: Env, status: MailStatus): Promise<void> {
  const doc = await readConf(confDir, 'minivm.conf')
  const entry = doc
    ? sections(doc)
        .filter((s) => s.name === 'general')
        .flatMap((s) => s.entries)
        .filter((e) => e.key === 'mailcmd')
        .at(-1)
    : undefined
  const words = entry ? mailcmdWords(entry.value) : undefined
  if (!doc || !entry || !words?.length || !isMinivmSend(words[0]!)) return
  const where = `${doc.file}:${entry.line}: mailcmd`
  try {
    const inv = parseArgs([...words.slice(1), '--flush'], env)
    if (inv.mode === 'help' || inv.smtp.user === undefined || inv.smtp.passwords.length) return
    status.warnings.push(
      `${where} logs in as -u ${inv.smtp.user} but there is no password (SMTP_PASSWORD_FILE, SMTP_PASSWORD, -p or --password-file): minivm-send sends without login; remove -u if the server needs none, or set the password`,
    )
  } catch (err) {
    if (!(err instanceof UsageError || err instanceof ConfigError)) throw err
    status.problems.push(
      `${where}: minivm-send refuses it (${err.message}); each voicemail e-mail waits in ${spoolDirOf(env)} until it is fixed`,
    )
  }
}

async function spoolStatus(env: Env, status: MailStatus): Promise<void> {
  const dir = spoolDirOf(env)
  const waiting = await messagesIn(dir)
  if (waiting.length) {
    const since = queuedAt(waiting[0]!)
    status.warnings.push(
      `${waiting.length} voicemail e-mail(s) wait in ${dir}${since ? ` (the oldest since ${since})` : ''}: run retries them every 5 minutes, and its log (component voicemail-mail) says why they are not sent`,
    )
  }
  const failed = await messagesIn(join(dir, FAILED_DIR))
  if (failed.length)
    status.warnings.push(
      `${failed.length} voicemail e-mail(s) in ${join(dir, FAILED_DIR)} were refused by the mail server for good (the log names each recipient and the server's answer): move one back to ${dir} to try it again, or delete it`,
    )
}

export async function mailStatus(confDir: string, env: Env): Promise<MailStatus> {
  const status: MailStatus = { problems: [], warnings: [] }
  await mailcmdStatus(confDir, env, status)
  await spoolStatus(env, status)
  return status
}
