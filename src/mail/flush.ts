// Sending what waits in the spool: oldest first, each message removed only once the server took
// it, a message the server refused for good moved to failed/, and the rest left for the next try.
// `minivm-send --flush` does it with its flags; run with the flags of minivm.conf's mailcmd, so
// there is one place to configure mail.
import { readFile, rm } from 'node:fs/promises'
import { getValues } from '../config/conf.ts'
import { readConf } from '../config/files.ts'
import { isMinivmSend, mailcmdWords } from '../config/mailcmd.ts'
import type { Logger } from '../base/log.ts'
import { describeFailure, isRefusal, type Failure } from './failure.ts'
import { parseMessage } from './message.ts'
import { createMailer, resolveConnection, serverName, type Connection, type Mailer, type SmtpSettings } from './smtp.ts'
import { lockSpool, type Holder } from './spool-lock.ts'
import { messagesIn, moveToFailed } from './spool.ts'

export interface FlushResult {
  /** The flush already running; nothing was done. */
  busy?: Holder
  sent: string[]
  /** Moved to failed/: refused for good. */
  failed: string[]
  failures: Array<{ file: string } & Failure>
  /** Queued files not sent, tried or not. */
  left: string[]
}

/** What a log line may say about a message: its recipients, once they can be read. */
function recipients(input: Buffer, from?: string): string | undefined {
  try {
    return parseMessage(input, from).envelope.to.join(',')
  } catch {
    return undefined
  }
}

export interface FlushSignals {
  /** No further message is started once it aborts. */
  stop?: AbortSignal
  /** The message being sent is cut off: the connection closes before the server's final reply, so
   * the server keeps nothing and the message stays queued. */
  abort?: AbortSignal
}

/**
 * Sends every queued message with the mailcmd's settings, oldest first. Stops at the first failure
 * that is not about one message, since the rest would fail the same way.
 */
export async function flushSpool(
  smtp: SmtpSettings,
  opts: { spoolDir: string; log: Logger } & FlushSignals,
): Promise<FlushResult> {
  const { spoolDir, log } = opts
  const files = await messagesIn(spoolDir)
  const result: FlushResult = { sent: [], failed: [], failures: [], left: [] }
  if (!files.length) {
    log.debug('spool is empty', { dir: spoolDir })
    return result
  }
  const lock = await lockSpool(spoolDir, {
    onStale: (holder, why) => log.info('taking over a stale spool lock', { dir: spoolDir, holder, why }),
  })
  if ('busy' in lock) {
    log.info('another flush is running; leaving the spool to it', { dir: spoolDir, pid: lock.busy.pid })
    return { ...result, busy: lock.busy, left: files }
  }
  log.info('sending queued messages', { dir: spoolDir, count: files.length, server: serverName(smtp) })
  let mailer: Mailer | undefined
  let conn: Omit<Connection, 'passwords'> = smtp
  try {
    let stopped = false
    for (const file of files) {
      if (stopped || opts.stop?.aborted || opts.abort?.aborted) {
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
          conn = await resolveConnection(smtp)
          mailer = await createMailer(conn as Connection, log)
        }
        const message = parseMessage(input, smtp.from)
        const info = await mailer.send(message, opts.abort)
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
        const failure = describeFailure(err, conn)
        result.failures.push({ file, ...failure })
        stopped = !failure.messageOnly
        const fields = { file, to: recipients(input, smtp.from), problem: failure.problem }
        if (isRefusal(failure)) {
          const moved = await moveToFailed(spoolDir, file)
          result.failed.push(moved)
          log.error('queued message refused for good; moved to failed/, it is not retried', { ...fields, file: moved })
          continue
        }
        result.left.push(file)
        if (failure.transient) log.warn('queued message not sent; will retry', fields)
        else log.error('queued message not accepted; it stays in the spool until the cause is fixed', fields)
      }
    }
  } finally {
    mailer?.close()
    await lock.release()
  }
  log.info('flush done', {
    dir: spoolDir,
    sent: result.sent.length,
    failed: result.failed.length,
    left: result.left.length,
  })
  return result
}

export const FLUSH_INTERVAL_MS = 5 * 60_000

/** Flushes the spool with minivm.conf's mailcmd flags; undefined when mailcmd is another mailer. */
export async function flushVoicemailSpool(
  confDir: string,
  env: NodeJS.ProcessEnv,
  log: Logger,
  signals: FlushSignals = {},
): Promise<FlushResult | undefined> {
  const doc = await readConf(confDir, 'minivm.conf')
  const mailcmd = doc ? getValues(doc, 'general', 'mailcmd').at(-1) : undefined
  const words = mailcmd ? mailcmdWords(mailcmd) : undefined
  if (!words?.length || !isMinivmSend(words[0]!)) {
    log.debug('minivm.conf mailcmd is not minivm-send; no spool to flush')
    return undefined
  }
  // The command line is minivm-send's: its parser, loaded only when minivm-send is the mailcmd.
  const { parseArgs } = await import('./minivm-send.ts')
  const inv = parseArgs([...words.slice(1), '--flush'], env)
  if (inv.mode !== 'flush') return undefined
  return flushSpool(inv.smtp, { spoolDir: inv.spoolDir, log, ...signals })
}
