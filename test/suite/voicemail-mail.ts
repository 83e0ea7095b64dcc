// Voicemail by e-mail end to end, with the real mailer: a call nobody answers is recorded by
// MiniVM on a real Asterisk, minivm.conf's mailcmd runs our minivm-send, and the mail reaches a
// real SMTP server over STARTTLS with a login. With the server down the mail waits in the spool
// and run's periodic flush delivers it once the server is back.
import t, { type Test } from 'tap'
import { mkdtemp, readdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setValue } from '../../src/config/conf.ts'
import { memoryLogger } from '../../src/base/log.ts'
import { flushVoicemailSpool } from '../../src/mail/flush.ts'
import { freePort, startTestPbx, USERS } from '../helpers/asterisk.ts'
import { selfSignedCert, startSmtpSink, type Sink } from '../helpers/smtp-sink.ts'
import { driver, finalResponses, findTools, rtpPcap, tone } from '../helpers/sipp.ts'

const tools = findTools()
if (typeof tools === 'string') t.plan(0, `skipped: ${tools}`)
else {
  const scratch = await mkdtemp(join(tmpdir(), 'pd-vm-mail-'))
  const tls = await selfSignedCert(scratch)
  const smtpPort = await freePort()
  const users = { 'vm@example.com': 'smtp-pw; "quoted" $x' }
  const sink = (): Promise<Sink> => startSmtpSink({ tls: 'starttls', cert: tls, users, port: smtpPort })
  const outbox = join(scratch, 'outbox')
  // Asterisk runs mailcmd with its own environment, which it has from us: the password comes
  // from there, as in the container, never from minivm.conf.
  process.env.SMTP_PASSWORD = users['vm@example.com']
  process.env.MINIVM_SPOOL_DIR = outbox
  const minivmSend = new URL('../../bin/minivm-send.js', import.meta.url).pathname
  // MiniVM keeps 159 bytes of mailcmd (check.ts says so): a temp path to a CA file would not fit,
  // so this relay's self-signed certificate is accepted with --insecure; test/minivm-send.ts
  // covers certificate checking.
  const mailcmd = `${minivmSend} -H 127.0.0.1:${smtpPort} -P starttls --insecure -u vm@example.com -f pbx@example.com`
  const pbx = await startTestPbx(tools.asterisk, {
    edit: {
      'extensions_local.conf': (doc) => setValue(doc, 'globals', 'DIAL_TIMEOUT', '2'),
      'minivm.conf': (doc) => setValue(doc, 'general', 'mailcmd', mailcmd),
    },
  })
  t.teardown(() => pbx.stop())
  const { start, phone, call } = driver(tools.sipp, pbx)

  /** The trunk calls bob, whose phone rings unanswered, and talks into his voicemail. */
  const leaveMessage = async (t: Test) => {
    const bob = await start({ scenario: 'uas-ring.xml', port: await phone(t, 'bob') })
    const r = await call('trunk', USERS.bob.number.slice(1), { media: rtpPcap(tone(12)) })
    t.equal(finalResponses(r, 'INVITE').at(-1), 200, `voicemail answers\n${r.summary}`)
    await bob.done
  }
  const until = async <T>(what: string, f: () => Promise<T | undefined>, ms = 60_000): Promise<T> => {
    for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 200))) {
      const v = await f()
      if (v !== undefined) return v
    }
    throw new Error(`${what} within ${ms / 1000} s`)
  }
  const queued = async () => (await readdir(outbox).catch(() => [] as string[])).filter((f) => f.endsWith('.eml'))

  t.test('a missed call arrives by e-mail, over STARTTLS with a login, with the recording attached', async (t) => {
    const server = await sink()
    t.teardown(() => server.close())
    await leaveMessage(t)
    const mail = await until('no mail reached the SMTP server', async () => server.received[0])
    t.same(mail.to, ['bob@example.com'])
    t.equal(mail.from, 'pbx@example.com')
    t.ok(mail.secure, 'the connection was upgraded to TLS')
    t.same(
      server.logins,
      [{ user: 'vm@example.com', password: users['vm@example.com'] }],
      'logged in with the password from the environment',
    )
    const text = mail.data.toString('latin1')
    const wav = /Content-Type: audio\/x-wav[\s\S]*?\r?\n\r?\n([A-Za-z0-9+/=\r\n]+)/.exec(text)?.[1]
    const audio = Buffer.from(wav ?? '', 'base64')
    t.equal(audio.subarray(8, 12).toString(), 'WAVE', 'the attachment is a WAV file')
    t.ok(audio.length > 16_000, `with the message in it (${audio.length} bytes)`)
    t.same(await queued(), [], 'nothing left waiting')
  })

  t.test('with the SMTP server down the mail waits, and the flush delivers it once it is up', async (t) => {
    await leaveMessage(t)
    const files = await until('the mail was not queued', async () =>
      (await queued()).length ? await queued() : undefined,
    )
    t.equal(files.length, 1, 'one mail waits in the spool')
    const log = memoryLogger('voicemail-mail')
    const down = await flushVoicemailSpool(join(pbx.dir, 'etc'), process.env, log)
    t.same([down?.sent.length, down?.left.length], [0, 1], 'a flush while the server is still down tries, and keeps it')
    const server = await sink()
    t.teardown(() => server.close())
    await flushVoicemailSpool(join(pbx.dir, 'etc'), process.env, log)
    t.equal(server.received.length, 1, `delivered by the flush\n${log.lines.join('\n')}`)
    t.same(server.received[0]?.to, ['bob@example.com'])
    t.same(await queued(), [], 'and removed from the spool only then')
    t.notMatch(log.lines.join('\n'), /smtp-pw/, 'the password is never logged')
  })
}
