import t from 'tap'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { display, MASK, readSettings, SETTINGS, valueOf } from '../../src/config/settings.ts'

const deps = { readFile: (p: string) => readFileSync(p, 'utf8') }
const read = (env: NodeJS.ProcessEnv) => readSettings(env, deps)

// One accepted and one refused value for every variable, so none goes untested.
const samples: Record<string, { good: [string, string][]; bad: string[] }> = {
  SIP_DOMAIN: {
    good: [
      ['Example.COM', 'example.com'],
      ['pbx.example.com.', 'pbx.example.com.'],
    ],
    bad: ['exa mple.com', 'example.com;', '-bad.com', '1.2.3.4', 'a'.repeat(64) + '.com'],
  },
  SIP_EXTERNAL_HOST: {
    good: [
      ['sip.example.com', 'sip.example.com'],
      ['203.0.113.7', '203.0.113.7'],
      ['2001:db8::1', '2001:db8::1'],
    ],
    bad: ['sip.example.com:5060', 'http://x', 'a b', '999.1.1.1'],
  },
  SIP_LOCAL_NET: {
    good: [
      ['192.168.0.0/16', '192.168.0.0/16'],
      ['10.0.0.0/8, 172.16.0.0/12 fd00::/8', '10.0.0.0/8,172.16.0.0/12,fd00::/8'],
      ['192.168.1.5', '192.168.1.5'],
    ],
    bad: ['192.168.0.0/33', '10.0.0.0/8;rm -rf', 'lan', ' , '],
  },
  SIP_PORT: {
    good: [
      ['5060', '5060'],
      ['05560', '5560'],
    ],
    bad: ['0', '65536', '99999', '50 60', '5060/udp', '-1', 'sip'],
  },
  SIP_TLS_PORT: { good: [['5061', '5061']], bad: ['70000', 'x'] },
  RTP_PORT_MIN: { good: [['10000', '10000']], bad: ['0', '1e4'] },
  RTP_PORT_MAX: { good: [['10099', '10099']], bad: ['65536', ''] },
  COUNTRY_CODE: {
    good: [
      ['46', '46'],
      ['1', '1'],
      ['358', '358'],
    ],
    bad: ['+46', '0046', '4646', '0', 'se'],
  },
  EMERGENCY_NUMBERS: {
    good: [
      ['112', '112'],
      ['112, 911 000', '112,911,000'],
      ['000,10111', '000,10111'],
    ],
    bad: ['', ' , ', '+112', '1', '1234567', '0046', '0012', '112;911', '11a'],
  },
  EMERGENCY_TRUNK: {
    good: [['itsp:mydoe', 'itsp:mydoe']],
    bad: ['itsp mydoe', 'a,b', 'x)'],
  },
  SMTP_HOST: { good: [['mx.example.com', 'mx.example.com']], bad: ['mx.example.com:587', 'mx example', "mx';reboot"] },
  SMTP_PORT: { good: [['587', '587']], bad: ['587a'] },
  SMTP_SECURITY: {
    good: [
      ['STARTTLS', 'starttls'],
      ['tls', 'tls'],
      ['none', 'none'],
    ],
    bad: ['ssl', 'smtps'],
  },
  SMTP_USER: {
    good: [
      ['john@example.com', 'john@example.com'],
      ['o\'brien; "x" => y ☎', 'o\'brien; "x" => y ☎'],
    ],
    bad: ['two\nlines', 'tab\there'],
  },
  SMTP_PASSWORD: { good: [['p@ss; w0rd"\'`$(x)', 'p@ss; w0rd"\'`$(x)']], bad: ['new\nline'] },
  SMTP_FROM: {
    good: [['pbx@example.com', 'pbx@example.com']],
    bad: ['pbx', 'a b@example.com', 'x@y;z.com', '<pbx@example.com>'],
  },
  MINIVM_SPOOL_DIR: { good: [['/srv/spool', '/srv/spool']], bad: ['spool'] },
  TLS_CERT_FILE: { good: [['/etc/ssl/asterisk/cert.pem', '/etc/ssl/asterisk/cert.pem']], bad: ['cert.pem', '/x\ny'] },
  TLS_KEY_FILE: { good: [['/k.pem', '/k.pem']], bad: ['./k.pem'] },
  TLS_MODE: {
    good: [
      ['ACME', 'acme'],
      ['selfsigned', 'selfsigned'],
      ['traefik', 'traefik'],
    ],
    bad: ['letsencrypt', 'self-signed'],
  },
  ACME_DIRECTORY: {
    good: [
      ['staging', 'staging'],
      ['https://acme.zerossl.com/v2/DV90', 'https://acme.zerossl.com/v2/DV90'],
    ],
    bad: ['http://insecure.example/dir', 'zerossl'],
  },
  ACME_EMAIL: { good: [['admin@example.com', 'admin@example.com']], bad: ['admin'] },
  ACME_DOMAINS: {
    good: [['sip.example.com, PBX.example.com', 'sip.example.com,pbx.example.com']],
    bad: ['sip.example.com;x', 'sip_example'],
  },
  ACME_HTTP_PORT: { good: [['8080', '8080']], bad: ['80x'] },
  ACME_EAB_KID: { good: [['kid-123', 'kid-123']], bad: ['a\nb'] },
  ACME_EAB_HMAC_KEY: { good: [['abc-_DEF123', 'abc-_DEF123']], bad: ['not base64!'] },
  ACME_CA_FILE: { good: [['/etc/ssl/ca.pem', '/etc/ssl/ca.pem']], bad: ['ca.pem'] },
  ACME_FILE: { good: [['/traefik/acme.json', '/traefik/acme.json']], bad: ['acme.json'] },
  WEBSMS_PORT: { good: [['8080', '8080']], bad: ['http'] },
  WEBSMS_SPOOL_DIR: { good: [['/srv/websms', '/srv/websms']], bad: ['websms'] },
  BAN_MODE: {
    good: [
      ['NFT', 'nft'],
      ['asterisk', 'asterisk'],
      ['off', 'off'],
    ],
    bad: ['iptables', 'fail2ban'],
  },
  BAN_THRESHOLD: { good: [['10', '10']], bad: ['0', '1001', 'ten'] },
  BAN_WINDOW_SECONDS: { good: [['600', '600']], bad: ['0', '10m'] },
  BAN_TIME_SECONDS: { good: [['1200', '1200']], bad: ['-5', '20 min'] },
  BAN_REPEAT_FACTOR: { good: [['4', '4']], bad: ['0', '1.5'] },
  BAN_MAX_SECONDS: { good: [['604800', '604800']], bad: ['31536001'] },
  BAN_ALLOW: {
    good: [['203.0.113.7, 2001:db8::/48', '203.0.113.7,2001:db8::/48']],
    bad: ['office.example.com', '10.0.0.0/8;drop'],
  },
  BAN_FILE: { good: [['/srv/bans.json', '/srv/bans.json']], bad: ['bans.json'] },
  ASTERISK_CONF_DIR: { good: [['/etc/asterisk', '/etc/asterisk']], bad: ['etc/asterisk'] },
  ASTERISK_BIN: {
    good: [
      ['/usr/sbin/asterisk', '/usr/sbin/asterisk'],
      ['asterisk', 'asterisk'],
    ],
    bad: ['ast risk'],
  },
  LOG_LEVEL: {
    good: [
      ['DEBUG', 'debug'],
      ['warn', 'warn'],
    ],
    bad: ['verbose', 'trace'],
  },
  TZ: {
    good: [
      ['Europe/Stockholm', 'Europe/Stockholm'],
      ['UTC', 'UTC'],
      ['Etc/GMT+5', 'Etc/GMT+5'],
    ],
    bad: ['../../etc/passwd', 'Europe/Stock holm', '/etc/localtime'],
  },
  STOP_GRACE_SECONDS: {
    good: [
      ['0', '0'],
      ['8', '8'],
    ],
    bad: ['-1', '3601', '1.5'],
  },
  WATCH_FILES: {
    good: [
      [
        '/etc/asterisk/extensions_local.conf, /etc/asterisk/minivm.conf',
        '/etc/asterisk/extensions_local.conf,/etc/asterisk/minivm.conf',
      ],
    ],
    bad: ['extensions_local.conf'],
  },
  LOG_FILE_MAX_MB: { good: [['10', '10']], bad: ['0', '10M'] },
  LOG_FILE_KEEP: { good: [['0', '0']], bad: ['101', 'all'] },
  ASTERISK_USER: { good: [['asterisk', 'asterisk']], bad: ['ast erisk', 'a;b'] },
  TEXT_STORE_DIR: { good: [['/srv/texts', '/srv/texts']], bad: ['texts', 'a\nb'] },
  TEXT_EXPIRY: {
    good: [
      ['604800', '604800'],
      ['7d', '604800'],
      ['90m', '5400'],
      ['2s', '2'],
    ],
    bad: ['0', '7 days', '-1d', '1.5h', '1w'],
  },
  TEXT_FANOUT: {
    good: [
      ['1h', '3600'],
      ['30', '30'],
    ],
    bad: ['0s', 'h'],
  },
  TEXT_MAX_PER_USER: {
    good: [
      ['1', '1'],
      ['500', '500'],
    ],
    bad: ['0', '100001', '5.5'],
  },
  TEXT_MAX_BYTES_PER_USER: { good: [['1048576', '1048576']], bad: ['1023', '1M'] },
  AMI_PORT: { good: [['5038', '5038']], bad: ['0', '65536', 'ami'] },
}

t.test('every variable in the table has its accepted and refused values tested', async (t) => {
  t.same(Object.keys(samples).sort(), SETTINGS.map((s) => s.name).sort())
})

for (const s of SETTINGS) {
  t.test(s.name, async (t) => {
    const sample = samples[s.name]!
    for (const [raw, want] of sample.good) {
      const { settings, problems } = read({ [s.name]: raw })
      t.same(problems, [], `accepts ${JSON.stringify(raw)}`)
      t.equal(settings.get(s.name)?.value, want, `${JSON.stringify(raw)} reads as ${JSON.stringify(want)}`)
    }
    for (const raw of sample.bad) {
      const { settings, problems } = read({ [s.name]: raw })
      if (raw === '') {
        t.notOk(settings.has(s.name), 'an empty variable counts as unset')
        continue
      }
      t.equal(problems.length, 1, `refuses ${JSON.stringify(raw)}`)
      t.match(problems[0], new RegExp(`^${s.name} must be `), 'names the variable')
      t.ok(problems[0]!.includes(s.allowed), 'says what is allowed')
      if (s.secret) t.notOk(problems[0]!.includes(raw), 'a secret value is not echoed')
      else t.ok(problems[0]!.includes(`\`${raw}\``), 'shows the value received')
    }
  })
}

t.test('unset variables are absent, so files keep their values', async (t) => {
  const { settings, problems } = read({})
  t.same(problems, [])
  t.equal(settings.size, 0)
})

t.test('all problems are reported at once', async (t) => {
  const { problems } = read({ SIP_PORT: 'x', RTP_PORT_MIN: '0', SMTP_FROM: 'nope' })
  t.equal(problems.length, 3)
})

t.test("the seed's spelling CONTRY_CODE still works", async (t) => {
  const { settings, problems } = read({ CONTRY_CODE: '46' })
  t.same(problems, [])
  t.equal(settings.get('COUNTRY_CODE')?.value, '46')
  t.equal(settings.get('COUNTRY_CODE')?.source, 'CONTRY_CODE', 'the log can say which name was used')
  t.same(read({ CONTRY_CODE: '46', COUNTRY_CODE: '46' }).problems, [], 'both names with one value is fine')
  const clash = read({ CONTRY_CODE: '46', COUNTRY_CODE: '1' })
  t.equal(clash.problems.length, 1)
  t.match(clash.problems[0], /COUNTRY_CODE and CONTRY_CODE are both set and differ/)
})

t.test('secrets from NAME_FILE', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pd-settings-'))
  const file = join(dir, 'smtp_password')
  writeFileSync(file, 's3cret; with "quotes"\n')
  const { settings, problems } = read({ SMTP_PASSWORD_FILE: file })
  t.same(problems, [])
  t.equal(
    settings.get('SMTP_PASSWORD')?.value,
    's3cret; with "quotes"',
    'the trailing newline is not part of the secret',
  )
  t.equal(settings.get('SMTP_PASSWORD')?.source, 'SMTP_PASSWORD_FILE')

  const both = read({ SMTP_PASSWORD: 'x', SMTP_PASSWORD_FILE: file })
  t.same(both.problems, ['SMTP_PASSWORD and SMTP_PASSWORD_FILE are both set; set only one'])

  const missing = read({ SMTP_PASSWORD_FILE: join(dir, 'nope') })
  t.equal(missing.problems.length, 1)
  t.match(missing.problems[0], /^SMTP_PASSWORD_FILE names `.*nope`, which can't be read: ENOENT/)

  writeFileSync(file, 'two\nlines\n')
  const bad = read({ SMTP_PASSWORD_FILE: file })
  t.match(bad.problems[0], /^SMTP_PASSWORD_FILE must be one line of text, got `\*+`/)
  t.notOk(bad.problems[0]!.includes('two'), 'the secret is masked')

  t.notOk(read({ SIP_PORT_FILE: file }).settings.has('SIP_PORT'), 'only secrets read _FILE')
})

t.test('a secret is masked wherever it is displayed', async (t) => {
  const { settings } = read({ SMTP_PASSWORD: 'hunter2', SMTP_USER: 'john' })
  t.equal(display('SMTP_PASSWORD', settings), MASK)
  t.equal(display('SMTP_USER', settings), 'john')
})

t.test('each default the code uses is typed once, is itself allowed, and is what the docs say', async (t) => {
  for (const s of SETTINGS.filter((s) => s.value !== undefined)) {
    t.same(s.parse(s.value!), { ok: s.value }, `${s.name}'s default \`${s.value}\` is allowed`)
    t.ok(s.default.includes(s.value!), `${s.name}'s documented default (${s.default}) names ${s.value}`)
  }
  const { settings } = readSettings({ STOP_GRACE_SECONDS: '3' }, { readFile: () => '' })
  t.equal(valueOf(settings, 'STOP_GRACE_SECONDS'), '3', 'a set variable wins')
  t.equal(valueOf(settings, 'ASTERISK_CONF_DIR'), '/etc/asterisk', 'an unset one is the table default')
  t.equal(valueOf(settings, 'SIP_DOMAIN'), undefined, "a file's value is not the code's to know")
})
