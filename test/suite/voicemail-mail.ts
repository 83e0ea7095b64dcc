// Voicemail by e-mail end to end, with the real mailer: a call nobody answers is recorded by
// MiniVM on a real Asterisk, minivm.conf's mailcmd runs our minivm-send, and the mail reaches a
// real SMTP server over STARTTLS with a login. With the server down the mail waits in the spool
// and run's periodic flush delivers it once the server is back. And the shipped minivm.conf, with
// only the compose file's SMTP settings applied, mails through a server that wants no login.
import t, { type Test } from 'tap'
import { copyFile, mkdir, mkdtemp, readdir, readFile, symlink } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { applyToDir } from '../../src/config/apply.ts'
import { getValues, parseConf, setValue } from '../../src/config/conf.ts'
import { readSettings } from '../../src/config/settings.ts'
import { memoryLogger } from '../../src/base/log.ts'
import { flushVoicemailSpool } from '../../src/mail/flush.ts'
import { startMailFlusher } from '../../src/mail/flusher.ts'
import { mailStatus } from '../../src/mail/status.ts'
import { freePort, SHIPPED_CONFIG, startTestPbx, USERS, type TestPbx } from '../helpers/asterisk.ts'
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
  /** A PBX whose MiniVM runs this mailcmd; bob's phone rings for 2 s, then voicemail answers. */
  const pbxMailingWith = async (mailcmd: string) => {
    const pbx = await startTestPbx(tools.asterisk, {
      edit: {
        'extensions_local.conf': (doc) => setValue(doc, 'globals', 'DIAL_TIMEOUT', '2'),
        'minivm.conf': (doc) => setValue(doc, 'general', 'mailcmd', mailcmd),
      },
    })
    t.teardown(() => pbx.stop())
    return pbx
  }
  const pbx = await pbxMailingWith(mailcmd)

  /** The trunk calls bob, whose phone rings unanswered, and talks into his voicemail. */
  const leaveMessage = async (t: Test, on: TestPbx = pbx) => {
    const { start, phone, call } = driver(tools.sipp, on)
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

  t.test('a mail the server refuses for good (550) goes to failed/ after one try', async (t) => {
    const text = '5.1.1 <bob@example.com>: Recipient address rejected'
    const server = await startSmtpSink({
      tls: 'starttls',
      cert: tls,
      users,
      port: smtpPort,
      refuse: { at: 'rcpt', code: 550, text },
    })
    t.teardown(() => server.close())
    const failedDir = join(outbox, 'failed')
    const before = await readdir(failedDir).catch(() => [] as string[])
    await leaveMessage(t)
    await until('the refused mail did not reach failed/', async () =>
      (await readdir(failedDir).catch(() => [] as string[])).length > before.length ? true : undefined,
    )
    t.same(server.refusals, [{ to: 'bob@example.com', code: 550 }], 'tried once')
    t.same(await queued(), [], 'nothing waits in the spool for a retry')
    const log = memoryLogger('voicemail-mail')
    const flushed = await flushVoicemailSpool(join(pbx.dir, 'etc'), process.env, log)
    t.same([flushed?.sent, flushed?.failures], [[], []], 'a flush leaves failed/ alone')
    t.equal(server.refusals.length, 1)
  })

  t.test('the shipped minivm.conf and the compose SMTP settings mail through a server with no login', async (t) => {
    // docker-compose.yml sets SMTP_HOST, SMTP_SECURITY and SMTP_FROM; the port is this test's.
    const port = await freePort()
    const env = {
      SMTP_HOST: '127.0.0.1',
      SMTP_PORT: String(port),
      SMTP_SECURITY: 'starttls',
      SMTP_FROM: 'pbx@example.com',
    }
    const confDir = join(scratch, 'shipped')
    await mkdir(confDir)
    await copyFile(join(SHIPPED_CONFIG, 'minivm.conf'), join(confDir, 'minivm.conf'))
    const { settings, problems } = readSettings(env, { readFile: () => '' })
    t.same(problems, [])
    await applyToDir({ confDir, settings, log: memoryLogger('apply') })
    const doc = parseConf(await readFile(join(confDir, 'minivm.conf'), 'utf8'), 'minivm.conf')
    const applied = getValues(doc, 'general', 'mailcmd').at(-1)!
    // As in the image: minivm-send on PATH, the relay's CA trusted like any other (no --insecure).
    const bin = join(scratch, 'bin')
    await mkdir(bin)
    await symlink(minivmSend, join(bin, 'minivm-send'))
    process.env.PATH = `${bin}:${dirname(process.execPath)}:${process.env.PATH}`
    process.env.NODE_EXTRA_CA_CERTS = tls.certFile
    process.env.MINIVM_SPOOL_DIR = join(scratch, 'outbox-shipped')
    const server = await startSmtpSink({ tls: 'starttls', cert: tls, port })
    t.teardown(() => server.close())
    const shipped = await pbxMailingWith(applied)
    await leaveMessage(t, shipped)
    const mail = await until(`no mail reached the SMTP server (mailcmd \`${applied}\`)`, async () => server.received[0])
    t.same(mail.to, ['bob@example.com'])
    t.equal(mail.from, 'pbx@example.com')
    t.ok(mail.secure, 'over STARTTLS')
    t.same(server.logins, [], 'without a login')
  })

  t.test('a mailcmd with a flag minivm-send does not know keeps the voicemail, and says so', async (t) => {
    const spool = join(scratch, 'outbox-typo')
    process.env.MINIVM_SPOOL_DIR = spool
    const typo = await pbxMailingWith(`${minivmSend} -H 127.0.0.1:${smtpPort} -P starttls --sender pbx@example.com`)
    await leaveMessage(t, typo)
    // MiniVM deleted its file when mailcmd returned; the mail lives on in the spool.
    await until('the mail was not kept', async () =>
      (await readdir(spool).catch(() => [] as string[])).some((f) => f.endsWith('.eml')) ? true : undefined,
    )
    const confDir = join(typo.dir, 'etc')
    const status = await mailStatus(confDir, process.env)
    t.match(status.problems, [/mailcmd: minivm-send refuses it \(Unknown option '--sender'/], 'check reports the flag')
    t.match(status.warnings, [/^1 voicemail e-mail\(s\) wait in /], 'and the mail that waits')
    const log = memoryLogger('voicemail-mail')
    const flusher = startMailFlusher({ confDir, env: process.env, log })
    await flusher.flush()
    await flusher.stop(Date.now() + 10_000)
    t.match(
      log.lines.join('\n'),
      /ERROR voicemail-mail: flushing queued voicemail e-mails failed: Unknown option '--sender'.* waiting=1/,
    )
  })
}
