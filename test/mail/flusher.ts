import t from 'tap'
import { existsSync } from 'node:fs'
import { mkdir, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { memoryLogger } from '../../src/base/log.ts'
import { startMailFlusher, voicemailMailService } from '../../src/mail/flusher.ts'
import { LOCK_FILE } from '../../src/mail/spool-lock.ts'
import { spoolMessage } from '../../src/mail/spool.ts'
import type { ServiceContext } from '../../src/service.ts'
import { queued, SIMPLE } from '../helpers/minivm-send.ts'
import { startSilentServer, startSmtpSink } from '../helpers/smtp-sink.ts'

const root = t.testdir({})
let count = 0

/** A config dir whose minivm.conf runs minivm-send with `flags`, and a spool with one mail in it. */
async function setup(flags: string) {
  const dir = join(root, `case-${++count}`)
  const confDir = join(dir, 'etc')
  const spool = join(dir, 'outbox')
  await mkdir(confDir, { recursive: true })
  await writeFile(join(confDir, 'minivm.conf'), `[general]\nmailcmd = minivm-send ${flags}\n`)
  await spoolMessage(spool, Buffer.from(SIMPLE), new Date())
  return { confDir, spool, env: { MINIVM_SPOOL_DIR: spool }, log: memoryLogger('voicemail-mail') }
}

t.test('as a service: flushes at start, and its stop waits for the message being accepted', async (t) => {
  const events: string[] = []
  let reached!: () => void
  const atData = new Promise<void>((r) => (reached = r))
  let go!: () => void
  const released = new Promise<void>((r) => (go = r))
  const sink = await startSmtpSink({
    tls: 'none',
    beforeReply: async () => {
      reached()
      await released
      events.push('accepted')
    },
  })
  t.teardown(sink.close)
  const c = await setup(`-H 127.0.0.1:${sink.port} -P smtp`)
  const service = voicemailMailService(c.env)
  t.equal(service.name, 'voicemail-mail')
  // The flusher needs nothing of Asterisk: a view that is never up.
  const asterisk = {
    onLine: () => undefined,
    onReady: () => undefined,
    rx: () => Promise.reject(new Error('Asterisk is not running')),
    booted: () => false,
  }
  const ctx: ServiceContext = {
    settings: new Map(),
    confDir: c.confDir,
    log: c.log,
    asterisk,
    signal: new AbortController().signal,
  }
  await service.start(ctx)
  await atData
  const stopped = service.stop(Date.now() + 60_000).then(() => events.push('stopped'))
  go()
  await stopped
  t.same(events, ['accepted', 'stopped'], 'the send in flight finished before stop resolved')
  t.equal(sink.received.length, 1)
  t.same(await queued(c.spool), [], 'and it left the spool')
  t.notOk(existsSync(join(c.spool, LOCK_FILE)), 'the lock is released')
})

t.test('a stop whose deadline comes first cuts the send off; the mail stays queued', async (t) => {
  const silent = await startSilentServer()
  t.teardown(silent.close)
  const c = await setup(`-H 127.0.0.1:${silent.port} -P smtp --timeout 3600`)
  const connected = new Promise<void>((r) => silent.server.once('connection', () => r()))
  const flusher = startMailFlusher(c)
  await connected
  await flusher.stop(Date.now())
  t.equal((await queued(c.spool)).length, 1, 'still queued for the next start')
  t.notOk(existsSync(join(c.spool, LOCK_FILE)), 'the lock is released')
  t.match(c.log.lines.join('\n'), /WARN  voicemail-mail: stop deadline near: cutting off the message being sent/)
  t.match(c.log.lines.join('\n'), /flush done .*sent=0 failed=0 left=1/)
})

t.test('a mailcmd minivm-send cannot run: each flush logs why and how many mails wait', async (t) => {
  const c = await setup('-H 127.0.0.1:25 --sender pbx@example.com')
  const flusher = startMailFlusher(c)
  await flusher.flush()
  await flusher.stop(Date.now() + 10_000)
  t.match(
    c.log.lines.join('\n'),
    /ERROR voicemail-mail: flushing queued voicemail e-mails failed: Unknown option '--sender'.* dir=\S+outbox waiting=1/,
  )
  t.equal((await queued(c.spool)).length, 1)
})
