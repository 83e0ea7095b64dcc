import t from 'tap'
import { chmodSync, cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execFileSync } from 'node:child_process'
import { applyToDir, editMailcmd, withPort } from '../../src/config/apply.ts'
import { getValues, parseConf, resolveValues } from '../../src/config/conf.ts'
import { ConfigError } from '../../src/base/errors.ts'
import { memoryLogger } from '../../src/base/log.ts'
import { readSettings } from '../../src/config/settings.ts'
import { DEFAULTS_DIR } from '../../src/config/seed.ts'

function confCopy(): string {
  const dir = mkdtempSync(join(tmpdir(), 'pd-apply-'))
  cpSync(DEFAULTS_DIR, dir, { recursive: true })
  return dir
}

function settingsOf(env: NodeJS.ProcessEnv) {
  const { settings, problems } = readSettings(env, { readFile: (p) => readFileSync(p, 'utf8') })
  if (problems.length) throw new Error(problems.join('\n'))
  return settings
}

const snapshot = (dir: string) =>
  Object.fromEntries(readdirSync(dir).map((f) => [f, readFileSync(join(dir, f), 'utf8')]))
const doc = (dir: string, f: string) => parseConf(readFileSync(join(dir, f), 'utf8'), f)

async function apply(dir: string, env: NodeJS.ProcessEnv, dryRun = false) {
  const log = memoryLogger('apply')
  const printed: string[] = []
  const result = await applyToDir({
    confDir: dir,
    settings: settingsOf(env),
    log,
    dryRun,
    print: (s) => printed.push(s),
  })
  return { result, log: log.lines, printed: printed.join('') }
}

/** What Asterisk's mailcmd runs, as argv: MiniVM hands it to /bin/sh, so /bin/sh splits it here too. */
function mailArgv(dir: string): string[] {
  const cmd = getValues(doc(dir, 'minivm.conf'), 'general', 'mailcmd').at(-1) ?? ''
  return execFileSync('/bin/sh', ['-c', `set -- ${cmd}; printf '%s\\0' "$@"`], { encoding: 'utf8' })
    .split('\0')
    .slice(0, -1)
}
const flag = (argv: string[], f: string) => (argv.includes(f) ? argv[argv.indexOf(f) + 1] : undefined)

t.test('each variable changes what it owns in the shipped files', async (t) => {
  const cases: [NodeJS.ProcessEnv, string, string, string, string[]][] = [
    [{ SIP_DOMAIN: 'example.com' }, 'pjsip_transport.conf', 'udp', 'domain', ['example.com']],
    [
      { SIP_EXTERNAL_HOST: 'sip.example.com' },
      'pjsip_transport.conf',
      'tls',
      'external_signaling_address',
      ['sip.example.com'],
    ],
    [
      { SIP_EXTERNAL_HOST: 'sip.example.com' },
      'pjsip_transport.conf',
      'udp',
      'external_media_address',
      ['sip.example.com'],
    ],
    [
      { SIP_LOCAL_NET: '192.168.0.0/16 10.0.0.0/8' },
      'pjsip_transport.conf',
      't_wan',
      'local_net',
      ['192.168.0.0/16', '10.0.0.0/8'],
    ],
    [{ SIP_PORT: '5560' }, 'pjsip_transport.conf', 'udp', 'bind', ['0.0.0.0:5560']],
    [{ SIP_PORT: '5560' }, 'pjsip_transport.conf', 'tcp', 'bind', ['0.0.0.0:5560']],
    [{ SIP_PORT: '5560' }, 'pjsip_transport.conf', 'udp6', 'bind', ['[::]:5560']],
    [{ SIP_PORT: '5560' }, 'pjsip_transport.conf', 'tcp6', 'bind', ['[::]:5560']],
    [{ SIP_TLS_PORT: '5561' }, 'pjsip_transport.conf', 'tls', 'bind', ['0.0.0.0:5561']],
    [{ SIP_TLS_PORT: '5561' }, 'pjsip_transport.conf', 'tls6', 'bind', ['[::]:5561']],
    [{ TLS_CERT_FILE: '/certs/fullchain.pem' }, 'pjsip_transport.conf', 'tls6', 'cert_file', ['/certs/fullchain.pem']],
    [{ SIP_DOMAIN: 'example.com' }, 'pjsip_transport.conf', 'udp6', 'domain', ['example.com']],
    [
      { SIP_EXTERNAL_HOST: '2001:db8::5' },
      'pjsip_transport.conf',
      'udp6',
      'external_signaling_address',
      ['2001:db8::5'],
    ],
    [{ SIP_EXTERNAL_HOST: '2001:db8::5' }, 'pjsip_transport.conf', 'udp', 'external_signaling_address', ['']],
    [{ SIP_EXTERNAL_HOST: 'sip.example.com' }, 'pjsip_transport.conf', 'udp6', 'external_signaling_address', ['']],
    [
      { SIP_LOCAL_NET: '192.168.0.0/16 fd12:3456::/48' },
      'pjsip_transport.conf',
      't_wan6',
      'local_net',
      ['fd12:3456::/48'],
    ],
    [{ TLS_CERT_FILE: '/certs/fullchain.pem' }, 'pjsip_transport.conf', 'tls', 'cert_file', ['/certs/fullchain.pem']],
    [{ TLS_KEY_FILE: '/certs/key.pem' }, 'pjsip_transport.conf', 'tls', 'priv_key_file', ['/certs/key.pem']],
    [{ RTP_PORT_MIN: '10010' }, 'rtp.conf', 'general', 'rtpstart', ['10010']],
    [{ RTP_PORT_MAX: '10050' }, 'rtp.conf', 'general', 'rtpend', ['10050']],
    [{ COUNTRY_CODE: '46' }, 'extensions_local.conf', 'globals', 'CONTRY_CODE', ['46']],
    [{ CONTRY_CODE: '358' }, 'extensions_local.conf', 'globals', 'CONTRY_CODE', ['358']],
    [
      { EMERGENCY_NUMBERS: '112 000, 10111' },
      'extensions_local.conf',
      'globals',
      'EMERGENCY_NUMBERS',
      ['112,000,10111'],
    ],
    [{ EMERGENCY_TRUNK: 'itsp:mydoe' }, 'extensions_local.conf', 'globals', 'EMERGENCY_TRUNK', ['itsp:mydoe']],
    [{ SMTP_FROM: 'pbx@example.com' }, 'minivm.conf', 'general', 'emailaddress', ['pbx@example.com']],
  ]
  for (const [env, file, section, key, want] of cases) {
    const dir = confCopy()
    const before = snapshot(dir)
    await apply(dir, env)
    const got = resolveValues([doc(dir, file)], section, key)
    const label = `${Object.entries(env)
      .map(([k, v]) => `${k}=${v}`)
      .join(' ')} -> ${file} [${section}] ${key}`
    t.same(key === 'local_net' ? got : got.slice(-1), want, label)
    const after = snapshot(dir)
    for (const f of Object.keys(before)) if (f !== file) t.equal(after[f], before[f], `${label}: ${f} untouched`)
  }
})

t.test('SMTP variables set the minivm-send flags in mailcmd', async (t) => {
  const dir = confCopy()
  await apply(dir, {
    SMTP_HOST: 'mx.example.com',
    SMTP_SECURITY: 'starttls',
    SMTP_USER: 'vm@example.com',
    SMTP_FROM: 'pbx@example.com',
  })
  const argv = mailArgv(dir)
  t.equal(argv[0], 'minivm-send')
  t.equal(flag(argv, '-H'), 'mx.example.com:587', 'port follows the security when SMTP_PORT is unset')
  t.equal(flag(argv, '-P'), 'starttls')
  t.equal(flag(argv, '-u'), 'vm@example.com')
  t.equal(flag(argv, '-f'), 'pbx@example.com')
  t.notOk(argv.includes('-p'), 'no password in the file')

  await apply(dir, { SMTP_PORT: '2525' })
  t.equal(flag(mailArgv(dir), '-H'), 'mx.example.com:2525', 'SMTP_PORT alone keeps the host')
  await apply(dir, { SMTP_SECURITY: 'tls' })
  t.equal(flag(mailArgv(dir), '-P'), 'tls')
  t.equal(flag(mailArgv(dir), '-H'), 'mx.example.com:2525', 'an explicit port is kept when security changes')
  await apply(dir, { SMTP_SECURITY: 'none' })
  t.equal(flag(mailArgv(dir), '-P'), 'smtp', 'none is plain SMTP')
})

t.test('hostile values reach minivm-send as one argument each', async (t) => {
  const dir = confCopy()
  const marker = join(dir, 'injected')
  const user = `o'brien"; touch ${marker} ; echo $(touch ${marker}) \`touch ${marker}\` ☎ => x \\ $HOME`
  await apply(dir, { SMTP_HOST: 'mx.example.com', SMTP_USER: user })
  const argv = mailArgv(dir)
  t.equal(flag(argv, '-u'), user)
  t.notOk(existsSync(marker), 'the shell ran nothing from the value')
  t.same(
    getValues(parseConf(readFileSync(join(dir, 'minivm.conf'), 'utf8')), 'general', 'mailcmd').length,
    1,
    'still one mailcmd line',
  )
})

t.test('SMTP_PASSWORD removes a password from the file and is never printed', async (t) => {
  const dir = confCopy()
  const f = join(dir, 'minivm.conf')
  const text = readFileSync(f, 'utf8').replace(
    /^mailcmd\s*=.*$/m,
    'mailcmd = minivm-send -H mx.example.com:587 -P starttls -u username -p oldsecret -f john.doe@example.com',
  )
  writeFileSync(f, text)
  const dry = await apply(dir, { SMTP_PASSWORD: 'newsecret' }, true)
  t.match(dry.printed, /^--- a\/minivm\.conf/m, 'dry run prints a unified diff')
  t.notMatch(dry.printed + dry.log.join('\n'), /oldsecret|newsecret/, 'neither the old nor the new password is shown')
  t.equal(readFileSync(f, 'utf8'), text, 'dry run writes nothing')
  const real = await apply(dir, { SMTP_PASSWORD: 'newsecret' })
  t.notOk(mailArgv(dir).includes('-p'))
  t.notMatch(readFileSync(f, 'utf8'), /oldsecret|newsecret/)
  t.notMatch(real.log.join('\n'), /oldsecret|newsecret/)
})

t.test('a mailcmd that is not minivm-send is replaced only when SMTP_* is set', async (t) => {
  const dir = confCopy()
  const f = join(dir, 'minivm.conf')
  writeFileSync(f, readFileSync(f, 'utf8').replace(/^mailcmd\s*=.*$/m, 'mailcmd = /usr/sbin/sendmail -t'))
  await apply(dir, { SIP_PORT: '5060' })
  t.same(mailArgv(dir), ['/usr/sbin/sendmail', '-t'], "unset SMTP_* keeps the user's mailer")
  await apply(dir, { SMTP_HOST: 'mx.example.com' })
  t.same(mailArgv(dir).slice(0, 3), ['minivm-send', '-H', 'mx.example.com:587'])
  t.equal(
    typeof editMailcmd('minivm-send -H x | tee /tmp/x', settingsOf({ SMTP_HOST: 'y.com' })),
    'object',
    'shell operators are refused, not mangled',
  )
})

t.test('unset variables leave every file as the user wrote it', async (t) => {
  const dir = confCopy()
  const f = join(dir, 'pjsip_transport.conf')
  const custom = readFileSync(f, 'utf8') + '\n; my note\n[lan](t_wan)\nprotocol = udp\nbind = 0.0.0.0:5070 ; mine\n'
  writeFileSync(f, custom)
  const before = snapshot(dir)
  const { log } = await apply(dir, {})
  t.same(snapshot(dir), before)
  t.match(log.join('\n'), /unchanged: no override variable is set/)
})

t.test("an edit keeps the user's comments, order and other keys", async (t) => {
  const dir = confCopy()
  const f = join(dir, 'pjsip_transport.conf')
  const original = readFileSync(f, 'utf8')
  const bind = getValues(parseConf(original), 't_wan', 'bind')[0]!
  const bind6 = getValues(parseConf(original), 't_wan6', 'bind')[0]!
  await apply(dir, { SIP_PORT: '5999' })
  t.equal(
    readFileSync(f, 'utf8'),
    original
      .replace(`bind = ${bind}`, `bind = ${withPort(bind, '5999')}`)
      .replace(`bind = ${bind6}`, `bind = ${withPort(bind6, '5999')}`),
    'only the bind line changed',
  )
})

t.test('a second run with the same env changes nothing and says so', async (t) => {
  const dir = confCopy()
  const env = { SIP_PORT: '5560', SIP_LOCAL_NET: '10.0.0.0/8', SMTP_HOST: 'mx.example.com', COUNTRY_CODE: '46' }
  await apply(dir, env)
  const first = snapshot(dir)
  const mtimes = readdirSync(dir).map((x) => statSync(join(dir, x)).mtimeMs)
  const { result, log } = await apply(dir, env)
  t.same(snapshot(dir), first, 'byte-identical')
  t.same(
    readdirSync(dir).map((x) => statSync(join(dir, x)).mtimeMs),
    mtimes,
    'no file rewritten',
  )
  t.same(result.files, [])
  t.match(log.join('\n'), /unchanged/)
})

t.test('mode and owner of a rewritten file are kept', async (t) => {
  const dir = confCopy()
  const f = join(dir, 'rtp.conf')
  chmodSync(f, 0o640)
  await apply(dir, { RTP_PORT_MIN: '10001' })
  t.equal(statSync(f).mode & 0o777, 0o640)
  t.same(
    readdirSync(dir).filter((x) => x.includes('.tmp')),
    [],
    'no temp file left',
  )
})

t.test('bad combinations exit with every problem and change no file', async (t) => {
  const cases: [NodeJS.ProcessEnv, RegExp][] = [
    [{ RTP_PORT_MIN: '20000', RTP_PORT_MAX: '10000' }, /rtpstart 20000 > rtpend 10000/],
    [{ RTP_PORT_MIN: '65000' }, /RTP port range is empty/],
    [{ SIP_PORT: '5061' }, /SIP_PORT and SIP_TLS_PORT are both 5061/],
  ]
  for (const [env, re] of cases) {
    const dir = confCopy()
    const before = snapshot(dir)
    const err = await apply(dir, { ...env, SIP_DOMAIN: 'example.com' }).catch((e: unknown) => e)
    t.ok(err instanceof ConfigError, JSON.stringify(env))
    t.match((err as Error).message, re)
    t.same(snapshot(dir), before, 'no file changed, not even for the valid SIP_DOMAIN')
  }
})

t.test('a transport that sets its own bind is reported, not silently skipped', async (t) => {
  const dir = confCopy()
  const f = join(dir, 'pjsip_transport.conf')
  writeFileSync(f, readFileSync(f, 'utf8') + '\n[lan](t_wan)\nprotocol = udp\nbind = 0.0.0.0:5070\n')
  const { log } = await apply(dir, { SIP_PORT: '5560' })
  t.match(log.join('\n'), /WARN .*\[lan\] in pjsip_transport\.conf sets its own bind `0\.0\.0\.0:5070`/)
})

t.test('withPort keeps the address', async (t) => {
  t.equal(withPort('0.0.0.0:5060', '5560'), '0.0.0.0:5560')
  t.equal(withPort('0.0.0.0', '5560'), '0.0.0.0:5560')
  t.equal(withPort('[::]:5060', '5560'), '[::]:5560')
  t.equal(withPort('::', '5560'), '[::]:5560')
})

t.test('a SIP_EXTERNAL_HOST that does not resolve is said once and kept out of Asterisk', async (t) => {
  const run = async (env: NodeJS.ProcessEnv, resolves: (host: string) => Promise<boolean>) => {
    const dir = confCopy()
    const log = memoryLogger('apply')
    const asked: string[] = []
    await applyToDir({
      confDir: dir,
      settings: settingsOf(env),
      log,
      resolves: (h) => (asked.push(h), resolves(h)),
    })
    const values = (key: string) => getValues(doc(dir, 'pjsip_transport.conf'), 't_wan', key)
    return {
      log: log.lines,
      asked,
      signaling: values('external_signaling_address'),
      media: values('external_media_address'),
    }
  }
  const missing = await run({ SIP_EXTERNAL_HOST: 'sip.example.com' }, async () => false)
  t.same(missing.asked, ['sip.example.com'])
  const warned = missing.log.filter((l) => / WARN /.test(l))
  t.equal(warned.length, 1, 'one line')
  t.match(warned[0], /SIP_EXTERNAL_HOST `sip\.example\.com` does not resolve: phones behind NAT will get no audio/)
  t.same([missing.signaling, missing.media], [[''], ['']], 'Asterisk is given no name to look up')

  const found = await run({ SIP_EXTERNAL_HOST: 'pbx.example.org' }, async () => true)
  t.same([found.signaling, found.media], [['pbx.example.org'], ['pbx.example.org']])
  t.notMatch(found.log.join('\n'), / WARN /)
  const ip = await run({ SIP_EXTERNAL_HOST: '203.0.113.7' }, async () => false)
  t.same(ip.asked, [], 'an address is not looked up')
  t.same(ip.signaling, ['203.0.113.7'])
})
