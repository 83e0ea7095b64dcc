import t from 'tap'
import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { Env } from '../../src/mail/spool.ts'
import { cli, SIMPLE } from '../helpers/minivm-send.ts'
import { selfSignedCert, startSmtpSink } from '../helpers/smtp-sink.ts'

const root = t.testdir({})
const tls = await selfSignedCert(root)
let spoolCount = 0
const newSpool = () => join(root, `spool-${++spoolCount}`)

t.test('login: the password from each source reaches the server', async (t) => {
  const password = 'pa"ss; w=>rd ü'
  const sink = await startSmtpSink({ tls: 'none', users: { alice: password } })
  t.teardown(sink.close)
  const pwFile = join(root, 'smtp-password')
  await writeFile(pwFile, password + '\n')
  const sources: Array<[string, string[], Env]> = [
    ['-p', ['-p', password], {}],
    ['--password-file', ['--password-file', pwFile], {}],
    ['SMTP_PASSWORD_FILE', [], { SMTP_PASSWORD_FILE: pwFile }],
    ['SMTP_PASSWORD', [], { SMTP_PASSWORD: password }],
  ]
  for (const [name, args, env] of sources) {
    const r = await cli(['-H', `127.0.0.1:${sink.port}`, '-P', 'smtp', '-u', 'alice', ...args], {
      spool: newSpool(),
      input: SIMPLE,
      env,
    })
    t.equal(r.code, 0, name)
    t.equal(sink.received.at(-1)?.user, 'alice', name)
    t.match(r.log.join('\n'), /WARN  minivm-send: the SMTP password goes unencrypted with -P smtp/, name)
  }
  t.same(
    sink.logins.map((l) => l.password),
    sources.map(() => password),
    'the trailing newline of the file is not part of the password',
  )
})

t.test('STARTTLS with login, trusting the relay through --ca-file', async (t) => {
  const sink = await startSmtpSink({ tls: 'starttls', cert: tls, users: { alice: 'right' } })
  t.teardown(sink.close)
  const r = await cli(['-H', `127.0.0.1:${sink.port}`, '-P', 'starttls', '-u', 'alice', '--ca-file', tls.certFile], {
    spool: newSpool(),
    input: SIMPLE,
    env: { SMTP_PASSWORD: 'right' },
  })
  t.equal(r.code, 0, r.stderr.join('\n'))
  t.match(sink.received, [{ secure: true, user: 'alice' }])
})

t.test('implicit TLS, as smtps and as tls', async (t) => {
  const sink = await startSmtpSink({ tls: 'implicit', cert: tls })
  t.teardown(sink.close)
  const insecure = await cli(['-H', `127.0.0.1:${sink.port}`, '-P', 'smtps', '--insecure'], {
    spool: newSpool(),
    input: SIMPLE,
  })
  t.equal(insecure.code, 0, insecure.stderr.join('\n'))
  const ca = await cli(['-H', `127.0.0.1:${sink.port}`, '-P', 'tls', '--ca-file', tls.certFile], {
    spool: newSpool(),
    input: SIMPLE,
  })
  t.equal(ca.code, 0, ca.stderr.join('\n'))
  t.match(sink.received, [{ secure: true }, { secure: true }])

  // A plain client waits for a greeting that a TLS port never sends.
  const wrongProtocol = await cli(['-H', `127.0.0.1:${sink.port}`, '-P', 'smtp', '--timeout', '0.5'], {
    spool: newSpool(),
    input: SIMPLE,
  })
  t.equal(wrongProtocol.code, 75)
  t.match(
    wrongProtocol.stderr[0],
    /no answer from 127\.0\.0\.1:\d+ within 0\.5 s; if 127\.0\.0\.1:\d+ expects TLS from the first byte, use -P smtps; queued as/,
  )
})

t.test('-u without any password: no login is tried, and the log says so', async (t) => {
  // The older shipped mailcmd had `-u username`; a relay that needs no login must still get the mail.
  const sink = await startSmtpSink({ tls: 'starttls', cert: tls })
  t.teardown(sink.close)
  const r = await cli(['-H', `127.0.0.1:${sink.port}`, '-u', 'username', '--ca-file', tls.certFile], {
    spool: newSpool(),
    input: SIMPLE,
  })
  t.equal(r.code, 0, r.stderr.join('\n'))
  t.equal(sink.received.length, 1)
  t.same(sink.logins, [], 'no login attempt')
  t.match(
    r.log.join('\n'),
    /WARN  minivm-send: -u username has no password \(no -p, --password-file, SMTP_PASSWORD_FILE or SMTP_PASSWORD\): sending without login/,
  )
})
