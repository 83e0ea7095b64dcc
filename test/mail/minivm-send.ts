import t from 'tap'
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { readFile, stat, writeFile } from 'node:fs/promises'
import { dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { execa } from 'execa'
import { ConfigError, UsageError } from '../../src/base/errors.ts'
import { parseArgs } from '../../src/mail/minivm-send.ts'
import type { SmtpSettings } from '../../src/mail/smtp.ts'
import type { Env } from '../../src/mail/spool.ts'
import { freePort as closedPort } from '../helpers/asterisk.ts'
import { cli, onTheWire, queued, SIMPLE, SIMPLE_RCPTS, SIMPLE_SENT } from '../helpers/minivm-send.ts'
import { startSmtpSink, type Received } from '../helpers/smtp-sink.ts'

const BIN = resolve(dirname(fileURLToPath(import.meta.url)), '../../bin/minivm-send.js')
const root = t.testdir({})

let spoolCount = 0
const newSpool = () => join(root, `spool-${++spoolCount}`)

t.test('parseArgs: defaults follow -P', async (t) => {
  const cases: Array<[string[], Partial<SmtpSettings>]> = [
    [['-H', 'mx.example.com'], { host: 'mx.example.com', port: 587, protocol: 'starttls' }],
    [['-H', 'mx.example.com', '-P', 'smtp'], { port: 25, protocol: 'smtp' }],
    [['-H', 'mx.example.com', '-P', 'smtps'], { port: 465 }],
    [['-H', 'mx.example.com', '-P', 'tls'], { port: 465, protocol: 'tls' }],
    [['-H', 'mx.example.com:2525', '-P', 'tls'], { port: 2525 }],
    [['-H', '[::1]:2525'], { host: '::1', port: 2525 }],
    [['-H', '::1'], { host: '::1', port: 587 }],
    [['-H', 'smtp.exämple.de'], { host: 'smtp.exämple.de' }],
    [['-Hmx', '--timeout', '0.5', '--insecure'], { host: 'mx', timeoutMs: 500, insecure: true }],
    [['-H', 'mx', '-f', 'Voicemail <vm@example.com>'], { from: 'vm@example.com' }],
  ]
  for (const [args, want] of cases) {
    const inv = parseArgs(args, {})
    if (inv.mode !== 'send') throw new Error(`expected send mode for ${args.join(' ')}`)
    t.match(inv.smtp, want, args.join(' '))
  }
  const inv = parseArgs(['-H', 'mx', '--flush'], {})
  t.match(inv, {
    mode: 'flush',
    spoolDir: '/var/spool/asterisk/minivm-outbox',
    logLevel: 'info',
    smtp: { timeoutMs: 30000, insecure: false },
  })
  t.match(parseArgs(['-H', 'mx'], { MINIVM_SPOOL_DIR: '/tmp/q', LOG_LEVEL: 'debug' }), {
    spoolDir: '/tmp/q',
    logLevel: 'debug',
  })
  t.same(parseArgs(['--help'], {}), { mode: 'help' })
})

t.test('parseArgs: password sources', async (t) => {
  const passwords = (args: string[], env: Env) => {
    const inv = parseArgs(['-H', 'mx', ...args], env)
    return inv.mode === 'help' ? [] : inv.smtp.passwords
  }
  t.same(passwords(['-u', 'u'], { SMTP_PASSWORD: 's3cret' }), [{ from: 'SMTP_PASSWORD', value: 's3cret' }])
  t.same(passwords(['-u', 'u'], { SMTP_PASSWORD_FILE: '/run/secrets/pw' }), [
    { from: 'SMTP_PASSWORD_FILE', file: '/run/secrets/pw' },
  ])
  t.same(passwords([], { SMTP_PASSWORD: 's3cret' }), [], 'the environment only counts with -u')
  t.same(
    passwords(['-u', 'u', '-p', 'x'], { SMTP_PASSWORD_FILE: '/f' }),
    [
      { from: '-p', value: 'x' },
      { from: 'SMTP_PASSWORD_FILE', file: '/f' },
    ],
    'refused when connecting, after the message is safe',
  )
})

t.test('parseArgs: bad command lines name the flag and the value', async (t) => {
  const cases: Array<[string[], Env, typeof UsageError | typeof ConfigError, RegExp]> = [
    [[], {}, UsageError, /^-H is required/],
    [['-H', 'mx:99999'], {}, UsageError, /-H port must be a number 1-65535, got `99999` in `mx:99999`/],
    [['-H', 'mx:'], {}, UsageError, /got `` in `mx:`/],
    [['-H', 'mx;rm -rf /'], {}, UsageError, /-H must be HOST\[:PORT\].*got `mx;rm -rf \/`/],
    [['-H', 'user@mx'], {}, UsageError, /got `user@mx`/],
    [['-H', 'mx', '-P', 'ssl'], {}, UsageError, /-P must be one of smtp, smtps, tls, starttls, got `ssl`/],
    [['-H', 'mx', '--timeout=-1'], {}, UsageError, /--timeout must be a positive number of seconds, got `-1`/],
    [['-H', 'mx', '--timeout', '-1'], {}, UsageError, /^Option '--timeout' argument is ambiguous\. Did you forget/],
    [['-H', 'mx', '--timeout', '0'], {}, UsageError, /got `0`/],
    [['-H', 'mx', '--timeout', '1e3'], {}, UsageError, /got `1e3`/],
    [
      ['-H', 'mx', '-u', 'u', '-p', 'x', '--password-file', '/f'],
      {},
      UsageError,
      /given more than once, by -p and --password-file: keep one/,
    ],
    [['-H', 'mx', '-p', 'x'], {}, UsageError, /-p needs -u/],
    [['-H', 'mx', '-u', ''], {}, UsageError, /-u must be a user name/],
    [['-H', 'mx', '-f', '"Doe; =>"'], {}, UsageError, /-f must be an e-mail address, got `"Doe; =>"`/],
    [['-H', 'mx', 'john@example.net'], {}, UsageError, /Unexpected argument 'john@example.net'/],
    [['-H', 'mx', '-x'], {}, UsageError, /Unknown option '-x'/],
    [['-H', 'mx'], { LOG_LEVEL: 'loud' }, ConfigError, /LOG_LEVEL must be debug, info, warn or error, got `loud`/],
  ]
  for (const [args, env, type, message] of cases) {
    t.throws(() => parseArgs(args, env), type, args.join(' '))
    t.throws(() => parseArgs(args, env), { message }, args.join(' '))
  }
})

t.test('plain SMTP without login', async (t) => {
  const sink = await startSmtpSink({ tls: 'none' })
  t.teardown(sink.close)
  const spool = newSpool()
  const r = await cli(['-H', `127.0.0.1:${sink.port}`, '-P', 'smtp'], { spool, input: SIMPLE })
  t.equal(r.code, 0)
  t.same(r.stderr, [])
  t.equal(sink.received.length, 1)
  const got = sink.received[0]!
  t.equal(got.from, 'pbx@example.com')
  t.same(got.to, SIMPLE_RCPTS)
  t.same(got.data, onTheWire(SIMPLE_SENT), 'the message arrives as read, without Bcc')
  t.equal(got.secure, false)
  t.match(r.log.join('\n'), /INFO  minivm-send: message sent server=127\.0\.0\.1:\d+ from=pbx@example\.com/)
  t.same(await queued(spool), [])
})

t.test('server down: queued with exit 75, then --flush delivers and empties the spool', async (t) => {
  const port = await closedPort()
  const spool = newSpool()
  const args = ['-H', `127.0.0.1:${port}`, '-P', 'smtp']
  const r = await cli(args, { spool, input: SIMPLE })
  t.equal(r.code, 75)
  t.equal(r.stderr.length, 1)
  t.match(
    r.stderr[0],
    new RegExp(
      `^minivm-send: cannot talk to 127\\.0\\.0\\.1:${port} \\(ECONNREFUSED\\); queued as ${spool}/\\d{8}T\\d{6}\\.\\d{3}Z-[0-9a-f]{8}\\.eml; minivm-send --flush sends it$`,
    ),
  )
  const files = await queued(spool)
  t.equal(files.length, 1)
  const file = join(spool, files[0]!)
  t.equal((await stat(file)).mode & 0o777, 0o600)
  t.equal(await readFile(file, 'utf8'), SIMPLE, 'the spool keeps the message as read, Bcc included')

  const stillDown = await cli(['--flush', ...args], { spool })
  t.equal(stillDown.code, 75)
  t.match(stillDown.stderr, [/^minivm-send: 1 queued message\(s\) in .* not sent: cannot talk to/])
  t.match(stillDown.log.join('\n'), /WARN  minivm-send: queued message not sent; will retry/)
  t.equal((await queued(spool)).length, 1)

  const sink = await startSmtpSink({ tls: 'none', port })
  t.teardown(sink.close)
  const up = await cli(['--flush', ...args], { spool })
  t.equal(up.code, 0, up.stderr.join('\n'))
  t.same(up.stderr, [])
  t.equal(sink.received.length, 1)
  t.same(sink.received[0]!.to, SIMPLE_RCPTS, 'Bcc recipients still get it')
  t.same(sink.received[0]!.data, onTheWire(SIMPLE_SENT))
  t.same(await queued(spool), [])
  t.notOk(existsSync(join(spool, '.flush.lock')), 'the lock is released')

  const empty = await cli(['--flush', ...args], { spool })
  t.equal(empty.code, 0)
  t.equal(sink.received.length, 1, 'nothing is sent twice')
})

t.test('8-bit UTF-8 subject and body arrive byte for byte', async (t) => {
  const sink = await startSmtpSink({ tls: 'none' })
  t.teardown(sink.close)
  const message = [
    'From: "Åsa Öberg" <asa@example.com>',
    'To: "Jöhn Døe" <john@example.net>',
    'Subject: Röstmeddelande från +46 70 123 45 67 📞 — 3:07',
    'MIME-Version: 1.0',
    'Content-Type: text/plain; charset=UTF-8',
    'Content-Transfer-Encoding: 8bit',
    '',
    'Hej Jöhn, du har ett nytt röstmeddelande (naïve café, 日本語).',
    '.a line that starts with a dot',
    '',
  ].join('\n')
  const r = await cli(['-H', `127.0.0.1:${sink.port}`, '-P', 'smtp'], { spool: newSpool(), input: message })
  t.equal(r.code, 0, r.stderr.join('\n'))
  const got = sink.received[0]!
  t.same(got.data, onTheWire(message))
  t.equal(got.data.toString('utf8').split('\r\n')[2], 'Subject: Röstmeddelande från +46 70 123 45 67 📞 — 3:07')
  t.equal(got.mailFromArgs.BODY, '8BITMIME', 'declared as 8-bit to the server')
})

/** A wav file: a RIFF header and noise, so every byte value appears. */
function wav(samples: number): Buffer {
  const data = randomBytes(samples * 2)
  const h = Buffer.alloc(44)
  h.write('RIFF', 0)
  h.writeUInt32LE(36 + data.length, 4)
  h.write('WAVEfmt ', 8)
  h.writeUInt32LE(16, 16)
  h.writeUInt16LE(1, 20)
  h.writeUInt16LE(1, 22)
  h.writeUInt32LE(8000, 24)
  h.writeUInt32LE(16000, 28)
  h.writeUInt16LE(2, 32)
  h.writeUInt16LE(16, 34)
  h.write('data', 36)
  h.writeUInt32LE(data.length, 40)
  return Buffer.concat([h, data])
}

/** The message as app_minivm.c's sendmail() writes it: LF lines, 8bit text, base64 at 72 columns, a final ".". */
function minivmMessage(bound: string, recording: Buffer): string {
  const b64 = recording.toString('base64').replace(/.{72}/g, '$&\n').replace(/\n$/, '')
  return [
    'Date: Thu, 26 Nov 2026 14:03:11 +0100',
    'From: "PrivateDial" <voicemail@example.com>',
    'Message-ID: <Asterisk-1804289383-john.doe-4242-voicemail@example.com>',
    'To: "John Doe" <john.doe@example.net>',
    'Subject: Nytt röstmeddelande från +46701234567',
    'MIME-Version: 1.0',
    `Content-Type: multipart/mixed; boundary="${bound}"`,
    '',
    '',
    `--${bound}`,
    'Content-Type: text/plain; charset=UTF-8',
    'Content-Transfer-Encoding: 8bit',
    '',
    'Hej John: ett meddelande på 0:12 från +46701234567.',
    '',
    `--${bound}`,
    'Content-Type: audio/x-wav; name="voicemailmsg.wav"',
    'Content-Transfer-Encoding: base64',
    'Content-Description: Voicemail sound attachment.',
    'Content-Disposition: attachment; filename="voicemail0001.wav"',
    '',
    b64,
    '',
    '',
    `--${bound}--`,
    '.',
    '',
  ].join('\n')
}

/** Splits a received multipart message by its boundary and decodes each part's body. */
function mimeParts(mail: Received): { parts: Array<{ head: string; body: Buffer }>; after: string } {
  const text = mail.data.toString('latin1')
  const bound = /boundary="([^"]+)"/.exec(text)?.[1]
  if (!bound) throw new Error('no multipart boundary in the received message')
  const sections = text.split(`\r\n--${bound}`)
  const parts = sections.slice(1, -1).map((s) => {
    const [head, body] = [s.slice(0, s.indexOf('\r\n\r\n')), s.slice(s.indexOf('\r\n\r\n') + 4)]
    const b64 = /Content-Transfer-Encoding: base64/i.test(head)
    return { head, body: b64 ? Buffer.from(body.replace(/\s+/g, ''), 'base64') : Buffer.from(body, 'latin1') }
  })
  return { parts, after: sections.at(-1) ?? '' }
}

t.test('a MiniVM voicemail with a wav attachment', async (t) => {
  const sink = await startSmtpSink({ tls: 'none' })
  t.teardown(sink.close)
  const recording = wav(24000)
  const input = minivmMessage('voicemail_john.doe42421804289383', recording)
  const r = await cli(['-H', `127.0.0.1:${sink.port}`, '-P', 'smtp', '-f', 'voicemail@example.com'], {
    spool: newSpool(),
    input,
  })
  t.equal(r.code, 0, r.stderr.join('\n'))
  const got = sink.received[0]!
  t.same(got.to, ['john.doe@example.net'])
  const { parts, after } = mimeParts(got)
  t.equal(after, '--\r\n', 'the closing boundary ends the message; the "." line is not sent')
  t.equal(parts.length, 2)
  t.equal(parts[0]!.body.toString('utf8'), 'Hej John: ett meddelande på 0:12 från +46701234567.\r\n')
  t.match(parts[1]!.head, /Content-Disposition: attachment; filename="voicemail0001\.wav"/)
  t.ok(parts[1]!.body.equals(recording), 'the attachment is the recording, byte for byte')
})

t.test('a mailcmd MiniVM runs with a bad flag keeps the message it was given, and says so', async (t) => {
  const spool = newSpool()
  const r = await cli(['-H', '127.0.0.1:1', '-P', 'smtp', '--sender', 'pbx@example.com'], { spool, input: SIMPLE })
  t.equal(r.code, 64)
  t.equal(r.stderr.length, 1)
  t.match(
    r.stderr[0],
    /^minivm-send: Unknown option '--sender'.*; kept as .*\.eml: fix mailcmd in minivm\.conf, then minivm-send --flush sends it$/,
  )
  const kept = await queued(spool)
  t.equal(kept.length, 1)
  t.equal(await readFile(join(spool, kept[0]!), 'utf8'), SIMPLE, 'byte for byte')
  const nothing = await cli(['--bogus'], { spool: newSpool() })
  t.equal(nothing.code, 64)
  t.notMatch(nothing.stderr.join('\n'), /kept as/, 'no message on stdin, nothing kept')
})

t.test('the bin, run the way MiniVM runs mailcmd', async (t) => {
  const sink = await startSmtpSink({ tls: 'none' })
  t.teardown(sink.close)
  const spool = newSpool()
  const recording = wav(8000)
  // `env node` in the shebang must find the Node 24 that runs these tests.
  const env = { PATH: `${dirname(process.execPath)}:${process.env.PATH}`, MINIVM_SPOOL_DIR: spool }
  const mailcmd = async (hostPort: string) => {
    const tmp = join(root, `astmail-${randomBytes(3).toString('hex')}`)
    await writeFile(tmp, minivmMessage('voicemail_bin', recording))
    // app_minivm.c: ( mailcmd < tmp ; rm -f tmp ) &, kept in the foreground to see the exit code.
    const r = await execa(
      '/bin/sh',
      [
        '-c',
        `"${BIN}" -H ${hostPort} -P smtp -f voicemail@example.com < "${tmp}"; code=$?; rm -f "${tmp}"; exit $code`,
      ],
      { env, reject: false },
    )
    t.notOk(existsSync(tmp), 'MiniVM removed its file')
    return r
  }

  const sent = await mailcmd(`127.0.0.1:${sink.port}`)
  t.equal(sent.exitCode, 0, sent.stderr)
  t.equal(sent.stderr, '')
  t.match(sent.stdout, /INFO  minivm-send: message sent/)
  t.ok(mimeParts(sink.received[0]!).parts[1]!.body.equals(recording))

  const port = await closedPort()
  const down = await mailcmd(`127.0.0.1:${port}`)
  t.equal(down.exitCode, 75)
  t.equal(down.stderr.split('\n').length, 1, 'one stderr line')
  t.match(down.stderr, /^minivm-send: cannot talk to .*; queued as /)
  t.equal((await queued(spool)).length, 1, 'the voicemail outlives the removed file')

  const flushed = await execa(
    BIN,
    ['--flush', '-H', `127.0.0.1:${sink.port}`, '-P', 'smtp', '-f', 'voicemail@example.com'],
    { env, reject: false },
  )
  t.equal(flushed.exitCode, 0, flushed.stderr)
  t.equal(sink.received.length, 2)
  t.same(await queued(spool), [])

  const help = await execa(BIN, ['--help'], { env })
  t.match(help.stdout, /--password-file FILE/)
  const bad = await execa(BIN, ['-P', 'smtp'], { env, reject: false })
  t.equal(bad.exitCode, 64)
  t.equal(bad.stderr, 'minivm-send: -H is required: the SMTP server as HOST[:PORT], e.g. -H mx.example.com:587')

  // A mailcmd typo, the way MiniVM runs it: the voicemail is kept, not lost with MiniVM's file.
  const typo = await mailcmd(`127.0.0.1:${sink.port} --sender voicemail@example.com`)
  t.equal(typo.exitCode, 64)
  t.match(typo.stderr, /Unknown option '--sender'.*; kept as .*: fix mailcmd in minivm\.conf/)
  t.equal((await queued(spool)).length, 1)
})
