import t from 'tap'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { memoryLogger } from '../../src/base/log.ts'
import { flushSpool } from '../../src/mail/flush.ts'
import { LOCK_FILE } from '../../src/mail/spool-lock.ts'
import { spoolMessage } from '../../src/mail/spool.ts'
import { freePort as closedPort } from '../helpers/asterisk.ts'
import { failed, queued, smtpOf } from '../helpers/minivm-send.ts'
import { startSilentServer, startSmtpSink } from '../helpers/smtp-sink.ts'

const root = t.testdir({})
let spoolCount = 0
const newSpool = () => join(root, `spool-${++spoolCount}`)
const message = (n: number, to = 'john@example.net') =>
  Buffer.from(`From: pbx@example.com\nTo: ${to}\nSubject: ${n}\n\nbody ${n}\n`)

t.test('flushSpool sends oldest first and stops at the first connection failure', async (t) => {
  const spool = newSpool()
  // Queued out of order; the clock, not the order of writing, decides.
  for (const n of [3, 1, 2]) await spoolMessage(spool, message(n), new Date(Date.UTC(2026, 0, 1, 12, 0, n)))
  const log = memoryLogger('minivm-send')
  const first = await flushSpool(smtpOf(['-H', `127.0.0.1:${await closedPort()}`, '-P', 'smtp']), {
    spoolDir: spool,
    log,
  })
  t.equal(first.failures.length, 1, 'one try, not one per message')
  t.equal(first.left.length, 3)

  const sink = await startSmtpSink({ tls: 'none' })
  t.teardown(sink.close)
  const second = await flushSpool(smtpOf(['-H', `127.0.0.1:${sink.port}`, '-P', 'smtp']), { spoolDir: spool, log })
  t.same(second.left, [])
  t.equal(second.sent.length, 3)
  t.same(
    sink.received.map((r) => /Subject: (\d)/.exec(r.data.toString())?.[1]),
    ['1', '2', '3'],
  )
})

t.test('a 550 moves each refused mail to failed/ after one try, with one log line naming its recipient', async (t) => {
  const sink = await startSmtpSink({
    tls: 'none',
    users: { pbx: 'pw-not-logged' },
    refuse: { at: 'rcpt', code: 550, text: '5.1.1 No such user here' },
  })
  t.teardown(sink.close)
  const spool = newSpool()
  await spoolMessage(spool, message(1, 'gone@example.net'), new Date(Date.UTC(2026, 0, 1, 12, 0, 1)))
  await spoolMessage(spool, message(2, 'left@example.net'), new Date(Date.UTC(2026, 0, 1, 12, 0, 2)))
  const smtp = smtpOf(['-H', `127.0.0.1:${sink.port}`, '-P', 'smtp', '-u', 'pbx', '-p', 'pw-not-logged'])
  const log = memoryLogger('voicemail-mail')
  const r = await flushSpool(smtp, { spoolDir: spool, log })
  t.same(
    sink.refusals.map((x) => x.to),
    ['gone@example.net', 'left@example.net'],
    'each tried once, the second despite the first',
  )
  t.equal(r.failed.length, 2)
  t.same(await queued(spool), [])
  t.equal((await failed(spool)).length, 2)
  const lines = log.lines.filter((l) => /refused for good/.test(l))
  t.equal(lines.length, 2, 'one line per mail')
  t.match(
    lines[0],
    /ERROR voicemail-mail: queued message refused for good; moved to failed\/, it is not retried file=\S+\/failed\/\S+\.eml to=gone@example\.net problem="127\.0\.0\.1:\d+ refused the message at RCPT TO \(550 5\.1\.1 No such user here\)"/,
  )
  t.notMatch(log.lines.join('\n'), /pw-not-logged/)

  const again = await flushSpool(smtp, { spoolDir: spool, log })
  t.same([again.sent, again.failures], [[], []], 'failed/ is not flushed')
  t.equal(sink.refusals.length, 2)
})

t.test('an abort cuts off the message being sent: it stays queued and the lock is released', async (t) => {
  const silent = await startSilentServer()
  t.teardown(silent.close)
  const spool = newSpool()
  await spoolMessage(spool, message(1), new Date())
  await spoolMessage(spool, message(2), new Date())
  const abort = new AbortController()
  const smtp = smtpOf(['-H', `127.0.0.1:${silent.port}`, '-P', 'smtp', '--timeout', '3600'])
  const flushing = flushSpool(smtp, { spoolDir: spool, log: memoryLogger('voicemail-mail'), abort: abort.signal })
  await new Promise<void>((resolve) => silent.server.once('connection', () => resolve()))
  abort.abort()
  const r = await flushing
  t.same(r.sent, [])
  t.equal(r.left.length, 2, 'both still queued')
  t.equal((await queued(spool)).length, 2)
  t.notOk(existsSync(join(spool, LOCK_FILE)), 'the lock is released')
})
