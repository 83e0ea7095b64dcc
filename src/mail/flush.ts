// Voicemail e-mails minivm-send could not send wait in its spool; run flushes them with the same
// flags MiniVM uses, read from minivm.conf's mailcmd, so there is one place to configure mail.
import { getValues } from '../config/conf.ts'
import { readConf } from '../config/files.ts'
import type { Logger } from '../base/log.ts'
import { isMinivmSend, mailcmdWords } from '../config/mailcmd.ts'
import type { FlushResult } from './minivm-send.ts'

export const FLUSH_INTERVAL_MS = 5 * 60_000

export async function flushVoicemailSpool(
  confDir: string,
  env: NodeJS.ProcessEnv,
  log: Logger,
): Promise<FlushResult | undefined> {
  const doc = await readConf(confDir, 'minivm.conf')
  const mailcmd = doc ? getValues(doc, 'general', 'mailcmd').at(-1) : undefined
  const words = mailcmd ? mailcmdWords(mailcmd) : undefined
  if (!words?.length || !isMinivmSend(words[0]!)) {
    log.debug('minivm.conf mailcmd is not minivm-send; no spool to flush')
    return undefined
  }
  // The mailer's module loads only when minivm-send is the mailcmd.
  const { flushSpool, parseArgs } = await import('./minivm-send.ts')
  const inv = parseArgs([...words.slice(1), '--flush'], env)
  if (inv.mode !== 'flush') return undefined
  return flushSpool(inv.smtp, { spoolDir: inv.spoolDir, log })
}
