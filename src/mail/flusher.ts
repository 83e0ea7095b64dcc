// The voicemail-mail service of `run`: voicemail e-mails minivm-send could not send wait in its
// spool, and this flushes them every FLUSH_INTERVAL_MS with minivm.conf's mailcmd flags. A stop
// lets the message being sent finish while the deadline allows, then cuts it off; either way the
// spool lock is released and an unsent message stays queued for the next start.
import type { Logger } from '../base/log.ts'
import type { Service } from '../service.ts'
import { FLUSH_INTERVAL_MS, flushVoicemailSpool } from './flush.ts'
import { messagesIn, spoolDirOf } from './spool.ts'

export interface MailFlusherOptions {
  confDir: string
  /** Where minivm-send's settings come from (SMTP_PASSWORD, MINIVM_SPOOL_DIR), as for mailcmd. */
  env: NodeJS.ProcessEnv
  log: Logger
  intervalMs?: number
}

export interface MailFlusher {
  /** Flushes now, or joins the flush under way; resolves when it is over. */
  flush(): Promise<void>
  /** Resolves once no flush runs and none will: the lock released, the connection closed. */
  stop(deadline: number): Promise<void>
}

/** Time kept before the deadline to close the connection and release the lock after an abort. */
const WIND_DOWN_MS = 500

export function startMailFlusher(opts: MailFlusherOptions): MailFlusher {
  const { confDir, env, log } = opts
  const stop = new AbortController()
  const abort = new AbortController()
  let inFlight: Promise<void> | undefined

  const once = async () => {
    try {
      await flushVoicemailSpool(confDir, env, log, { stop: stop.signal, abort: abort.signal })
    } catch (err) {
      // A mailcmd minivm-send cannot run (a bad flag): the mail MiniVM handed it waits in the spool.
      const dir = spoolDirOf(env)
      const waiting = await messagesIn(dir).then(
        (files) => files.length,
        () => undefined,
      )
      log.error(`flushing queued voicemail e-mails failed: ${err instanceof Error ? err.message : String(err)}`, {
        dir,
        waiting,
      })
    }
  }
  const flush = (): Promise<void> => {
    // A tick during a flush joins it: two flushes of one spool in one process would only wait on the lock.
    inFlight ??= once().finally(() => (inFlight = undefined))
    return inFlight
  }
  const timer = setInterval(() => void flush(), opts.intervalMs ?? FLUSH_INTERVAL_MS)
  void flush()

  return {
    flush: () => (stop.signal.aborted ? Promise.resolve() : flush()),
    async stop(deadline) {
      clearInterval(timer)
      stop.abort()
      const flight = inFlight
      if (!flight) return
      const cut = setTimeout(
        () => {
          log.warn('stop deadline near: cutting off the message being sent; it stays queued')
          abort.abort()
        },
        Math.max(0, deadline - Date.now() - WIND_DOWN_MS),
      )
      await flight
      clearTimeout(cut)
    },
  }
}

/** The flusher as one of run's services. */
export function voicemailMailService(env: NodeJS.ProcessEnv = process.env): Service {
  let flusher: MailFlusher | undefined
  return {
    name: 'voicemail-mail',
    async start(ctx) {
      flusher = startMailFlusher({ confDir: ctx.confDir, env, log: ctx.log })
    },
    async stop(deadline) {
      await flusher?.stop(deadline)
      flusher = undefined
    },
  }
}
