import t from 'tap'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { cli, failed, queued, SIMPLE } from '../helpers/minivm-send.ts'
import { selfSignedCert, startSilentServer, startSmtpSink } from '../helpers/smtp-sink.ts'

const root = t.testdir({})
const tls = await selfSignedCert(root)
let spoolCount = 0
const newSpool = () => join(root, `spool-${++spoolCount}`)

t.test('a password given twice is refused, naming both, and the message is kept', async (t) => {
  const spool = newSpool()
  const pwFile = join(root, 'other-password')
  await writeFile(pwFile, 'from-the-file\n')
  const r = await cli(['-H', '127.0.0.1:1', '-P', 'smtp', '-u', 'alice', '-p', 'from-the-flag'], {
    spool,
    input: SIMPLE,
    env: { SMTP_PASSWORD_FILE: pwFile },
  })
  t.equal(r.code, 78)
  t.equal(r.stderr.length, 1)
  t.match(
    r.stderr[0],
    /^minivm-send: the SMTP password is given more than once, by -p and SMTP_PASSWORD_FILE: keep one; kept as .*\.eml/,
  )
  t.notMatch(r.stderr[0], /from-the-(flag|file)/)
  t.equal((await queued(spool)).length, 1)

  const missing = await cli(['-H', '127.0.0.1:1', '-u', 'alice', '--password-file', join(root, 'nope')], {
    spool,
    input: SIMPLE,
  })
  t.equal(missing.code, 78)
  t.match(missing.stderr[0], /reading the SMTP password file \(--password-file\) .*nope: ENOENT/)
})

t.test('-P starttls refuses a server that does not offer STARTTLS', async (t) => {
  const sink = await startSmtpSink({ tls: 'none' })
  t.teardown(sink.close)
  const spool = newSpool()
  const r = await cli(['-H', `127.0.0.1:${sink.port}`, '-P', 'starttls'], { spool, input: SIMPLE })
  t.equal(r.code, 1)
  t.match(
    r.stderr[0],
    new RegExp(`^minivm-send: 127\\.0\\.0\\.1:${sink.port} refused the message at STARTTLS \\(5\\d\\d .*\\); kept as`),
  )
  t.same(sink.received, [])
  t.equal((await queued(spool)).length, 1)
})

t.test('the certificate is verified by default', async (t) => {
  for (const [protocol, mode] of [
    ['smtps', 'implicit'],
    ['starttls', 'starttls'],
  ] as const) {
    const sink = await startSmtpSink({ tls: mode, cert: tls })
    t.teardown(sink.close)
    const spool = newSpool()
    const r = await cli(['-H', `127.0.0.1:${sink.port}`, '-P', protocol], { spool, input: SIMPLE })
    t.equal(r.code, 1, protocol)
    t.equal(r.stderr.length, 1)
    t.match(
      r.stderr[0],
      new RegExp(
        `^minivm-send: the TLS certificate of 127\\.0\\.0\\.1:${sink.port} is not trusted \\(self-signed certificate, DEPTH_ZERO_SELF_SIGNED_CERT\\): give its CA with --ca-file, or --insecure to skip the check; kept as`,
      ),
      protocol,
    )
    t.same(sink.received, [], protocol)
    t.equal((await queued(spool)).length, 1, protocol)
  }
})

t.test('a wrong password: exit 1, the user and server named, the password nowhere', async (t) => {
  const sink = await startSmtpSink({ tls: 'none', users: { alice: 'right' } })
  t.teardown(sink.close)
  const spool = newSpool()
  const wrong = `wr"ong; =>\u00fc`
  const r = await cli(['-H', `127.0.0.1:${sink.port}`, '-P', 'smtp', '-u', 'alice', '-p', wrong], {
    spool,
    input: SIMPLE,
  })
  t.equal(r.code, 1)
  t.equal(r.stderr.length, 1)
  t.match(
    r.stderr[0],
    new RegExp(
      `^minivm-send: SMTP authentication failed for user "alice" at 127\\.0\\.0\\.1:${sink.port} \\(535 5\\.7\\.8 Authentication credentials invalid\\); kept as`,
    ),
  )
  t.equal(sink.logins[0]?.password, wrong, 'the server did get the password')
  const files = await queued(spool)
  t.equal(files.length, 1)
  for (const text of [
    r.stderr.join('\n'),
    r.stdout,
    r.log.join('\n'),
    await readFile(join(spool, files[0]!), 'utf8'),
  ]) {
    t.notMatch(text, wrong)
    t.notMatch(text, Buffer.from(wrong).toString('base64'))
  }
})

t.test('a 4xx reply queues; a 5xx refusal of the message moves it to failed/ after one try', async (t) => {
  const busy = await startSmtpSink({ tls: 'none', refuse: { at: 'rcpt', code: 451, text: '4.3.0 Try again later' } })
  t.teardown(busy.close)
  const r451 = await cli(['-H', `127.0.0.1:${busy.port}`, '-P', 'smtp'], { spool: newSpool(), input: SIMPLE })
  t.equal(r451.code, 75)
  t.match(r451.stderr[0], /refused the message at RCPT TO \(451 4\.3\.0 Try again later\); queued as/)

  for (const [at, code, text] of [
    ['rcpt', 550, '5.1.1 No such user'],
    ['data', 554, '5.7.1 Looks like spam'],
  ] as const) {
    const sink = await startSmtpSink({ tls: 'none', refuse: { at, code, text } })
    t.teardown(sink.close)
    const spool = newSpool()
    const args = ['-H', `127.0.0.1:${sink.port}`, '-P', 'smtp']
    const r = await cli(args, { spool, input: SIMPLE })
    t.equal(r.code, 1, `${code}`)
    t.equal(r.stderr.length, 1)
    t.match(
      r.stderr[0],
      new RegExp(
        `^minivm-send: to john@example\\.net,jane@example\\.net,archive@example\\.org,secret-archive@example\\.org: 127\\.0\\.0\\.1:${sink.port} refused the message at (RCPT TO|DATA) \\(${code} ${text.replace(/\./g, '\\.')}\\); moved to ${spool}/failed/\\S+\\.eml, it is not retried$`,
      ),
    )
    t.same(await queued(spool), [], `${code}: nothing waits in the spool`)
    const kept = await failed(spool)
    t.equal(kept.length, 1, `${code}: kept in failed/`)
    t.equal(await readFile(join(spool, 'failed', kept[0]!), 'utf8'), SIMPLE, 'byte for byte')
    const tries = sink.refusals.length
    const again = await cli(['--flush', ...args], { spool })
    t.equal(again.code, 0)
    t.equal(sink.refusals.length, tries, `${code}: a flush does not try it again`)
  }
})

t.test('a server that wants a login keeps the mail in the spool and says how to log in', async (t) => {
  const sink = await startSmtpSink({
    tls: 'none',
    refuse: { at: 'rcpt', code: 530, text: '5.7.0 Authentication required' },
  })
  t.teardown(sink.close)
  const spool = newSpool()
  const r = await cli(['-H', `127.0.0.1:${sink.port}`, '-P', 'smtp'], { spool, input: SIMPLE })
  t.equal(r.code, 1)
  t.match(
    r.stderr[0],
    /\(530 5\.7\.0 Authentication required\); the server wants a login: give -u \(SMTP_USER\) and a password \(SMTP_PASSWORD_FILE or SMTP_PASSWORD\); kept as .*\.eml; fix the cause/,
  )
  t.equal((await queued(spool)).length, 1)
  t.same(await failed(spool), [])

  // With -u but no password nothing logs in; a refusal then is about the missing login, not the mail.
  const relay = await startSmtpSink({
    tls: 'none',
    refuse: { at: 'rcpt', code: 554, text: '5.7.1 Relay access denied' },
  })
  t.teardown(relay.close)
  const noLogin = await cli(['-H', `127.0.0.1:${relay.port}`, '-P', 'smtp', '-u', 'pbx'], { spool, input: SIMPLE })
  t.equal(noLogin.code, 1)
  t.match(
    noLogin.stderr[0],
    /\(554 5\.7\.1 Relay access denied\); -u pbx has no password, so no login was tried: set SMTP_PASSWORD_FILE or SMTP_PASSWORD, or remove -u; kept as/,
  )
  t.equal((await queued(spool)).length, 2)
  t.same(await failed(spool), [])
})

t.test('--timeout: a server that never greets', async (t) => {
  const silent = await startSilentServer()
  t.teardown(silent.close)
  const { port } = silent
  const spool = newSpool()
  const r = await cli(['-H', `127.0.0.1:${port}`, '-P', 'smtp', '--timeout', '0.2'], { spool, input: SIMPLE })
  t.equal(r.code, 75)
  t.match(
    r.stderr[0],
    new RegExp(`^minivm-send: no answer from 127\\.0\\.0\\.1:${port} within 0\\.2 s; if .* use -P smtps; queued as`),
  )
  t.equal((await queued(spool)).length, 1)
})
