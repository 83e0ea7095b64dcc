import t, { type Test } from 'tap'
import { readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { ConfigError } from '../../src/base/errors.ts'
import { memoryLogger } from '../../src/base/log.ts'
import { describeCertificate } from '../../src/cert/info.ts'
import { backoffDelay } from '../../src/cert/policy.ts'
import {
  ACCOUNT_KEY_NAME,
  ensureCertificate,
  keepCertificateFresh,
  type CertOptions,
  type CertResult,
  type SetTimer,
} from '../../src/cert/keeper.ts'
import { pebbleMissing, startPebble, type Pebble } from '../helpers/pebble.ts'
import { opensslPublicKeyOf, opensslView } from '../helpers/openssl.ts'

const DAY = 86_400_000

/** Timers that fire only when the test says so. */
function manualTimers() {
  const pending: Array<{ at: Date; run: () => Promise<void>; cancelled: boolean }> = []
  const setTimer: SetTimer = (at, run) => {
    const entry = { at, run, cancelled: false }
    pending.push(entry)
    return () => {
      entry.cancelled = true
    }
  }
  const live = () => pending.filter((p) => !p.cancelled)
  return {
    setTimer,
    /** When the one live timer is due. */
    next(): Date | undefined {
      const l = live()
      if (l.length > 1) throw new Error(`expected at most one live timer, got ${l.length}`)
      return l[0]?.at
    },
    async fire(): Promise<void> {
      const [entry, ...more] = live()
      if (!entry || more.length > 0) throw new Error(`expected one live timer, got ${live().length}`)
      entry.cancelled = true
      await entry.run()
    },
  }
}

function certOptions(dir: string, extra: Partial<CertOptions> = {}) {
  const logger = memoryLogger('cert')
  const clock = { now: new Date('2031-05-01T12:00:00Z') }
  const opts: CertOptions = {
    mode: 'selfsigned',
    certFile: join(dir, 'cert.pem'),
    keyFile: join(dir, 'priv_key.pem'),
    hostname: 'sip.privatedial.test',
    logger,
    now: () => clock.now,
    random: () => 0.5,
    ...extra,
  }
  return { opts, logger, clock }
}

t.test('bad options are configuration errors, before anything is written', async (t) => {
  const dir = t.testdir()
  const cases: Array<[string, Partial<CertOptions>, string]> = [
    [
      'acme without a name',
      { mode: 'acme', hostname: undefined },
      'TLS_MODE=acme needs ACME_DOMAINS or SIP_EXTERNAL_HOST, the name(s) the certificate is for; got neither',
    ],
    [
      'acme with only blank names',
      { mode: 'acme', hostname: '', domains: [' '] },
      'TLS_MODE=acme needs ACME_DOMAINS or SIP_EXTERNAL_HOST, the name(s) the certificate is for; got neither',
    ],
    [
      'acme for an IP address',
      { mode: 'acme', domains: ['sip.example.com', '192.0.2.1'] },
      'ACME_DOMAINS must list DNS names (HTTP-01 orders no IP addresses), got `192.0.2.1`',
    ],
    [
      'acme with a hostile name',
      { mode: 'acme', domains: ['sip.example.com;reboot'] },
      'ACME_DOMAINS must be a DNS name or an IP address, got `sip.example.com;reboot`',
    ],
    [
      'traefik without acme.json',
      { mode: 'traefik' },
      "TLS_MODE=traefik needs ACME_FILE, the path of Traefik's acme.json, got nothing",
    ],
    [
      'half an EAB',
      { mode: 'acme', acme: { eab: { kid: 'kid-1', hmacKey: '' } } },
      'ACME_EAB_KID and ACME_EAB_HMAC_KEY go together, got only ACME_EAB_KID',
    ],
    [
      'the other half',
      { mode: 'acme', acme: { eab: { kid: '', hmacKey: 'c2VjcmV0' } } },
      'ACME_EAB_KID and ACME_EAB_HMAC_KEY go together, got only ACME_EAB_HMAC_KEY',
    ],
    [
      'a directory that is no URL',
      { mode: 'acme', acme: { directory: 'letsencrypt' } },
      'ACME_DIRECTORY must be `production`, `staging` or an https:// URL of an ACME directory, got `letsencrypt`',
    ],
  ]
  for (const [name, extra, message] of cases) {
    const { opts, logger } = certOptions(dir, extra)
    await t.rejects(ensureCertificate(opts), new ConfigError([message]), name)
    t.notMatch(logger.lines.join('\n'), /c2VjcmV0/, `${name}: no secret in the log`)
  }
})

t.test('keeping a self-signed certificate fresh with injected timers', async (t) => {
  const dir = t.testdir()
  const { opts, logger, clock } = certOptions(dir)
  const first = await ensureCertificate(opts)
  const timers = manualTimers()
  const changes: CertResult[] = []
  let failReload = true
  const fresh = keepCertificateFresh(
    opts,
    (r) => {
      changes.push(r)
      if (failReload) throw new Error('asterisk -rx "module reload res_pjsip.so": Unable to connect to remote asterisk')
    },
    { after: first, setTimer: timers.setTimer },
  )
  t.teardown(() => fresh.stop())
  t.same(timers.next(), first.nextCheck, 'first check when the start-up check said')

  // Twelve-hourly checks while far from the window.
  clock.now = first.nextCheck
  await timers.fire()
  t.equal(changes.length, 0)
  t.same(timers.next(), new Date(clock.now.getTime() + 12 * 3_600_000))

  // Into the renewal window: renewed, onChange called; its failure is logged, the loop goes on.
  clock.now = new Date(first.notAfter.getTime() - 100 * DAY)
  await timers.fire()
  t.equal(changes.length, 1)
  t.equal(changes[0]?.changed, true)
  t.same(changes[0]?.notAfter, new Date(clock.now.getTime() + 365 * DAY))
  t.match(logger.lines.join('\n'), /ERROR cert: new certificate written, but applying it failed error="asterisk -rx/)
  t.ok(timers.next(), 'still scheduled')

  // Requests during a check are merged into one more check.
  failReload = false
  const before = logger.lines.filter((l) => l.includes('checking certificate')).length
  await Promise.all([fresh.checkNow('SIGHUP'), fresh.checkNow('SIGHUP'), fresh.checkNow('SIGHUP')])
  t.equal(logger.lines.filter((l) => l.includes('checking certificate')).length - before, 2)
  t.equal(changes.length, 1, 'nothing new to apply')

  await fresh.stop()
  t.equal(timers.next(), undefined, 'stopped: no timer left')
  await fresh.checkNow('after stop')
  t.equal(logger.lines.filter((l) => l.includes('checking certificate')).length - before, 2, 'stopped: no more checks')
})

t.test('without a start result the first check runs at once', async (t) => {
  const dir = t.testdir()
  const { opts } = certOptions(dir)
  const timers = manualTimers()
  const changes: CertResult[] = []
  const fresh = keepCertificateFresh(opts, (r) => void changes.push(r), { setTimer: timers.setTimer })
  await fresh.checkNow('test')
  await fresh.stop()
  t.equal(changes.length, 1, 'the certificate was created and applied')
})

const missing = pebbleMissing()

t.test('ACME against pebble', { skip: missing }, async (t) => {
  /** Pebble in <testdir>/pebble, and <testdir>/etc for our files. */
  const pebbleFor = async (t: Test) => {
    const root = t.testdir()
    const p = await startPebble({ alwaysValid: true, dir: join(root, 'pebble') })
    t.teardown(() => p.stop())
    return { p, dir: join(root, 'etc') }
  }
  const acmeCertOptions = (dir: string, p: Pebble) =>
    certOptions(dir, {
      mode: 'acme',
      domains: ['sip.privatedial.test'],
      acme: {
        directory: p.directoryUrl,
        email: 'admin@privatedial.test',
        httpPort: p.httpPort,
        httpAddress: '127.0.0.1',
        caCert: p.caCert,
        requestRetries: 0,
      },
    })

  t.test('first start: a self-signed stand-in at once, then the CA certificate', async (t) => {
    const { p, dir } = await pebbleFor(t)
    const { opts, logger, clock } = acmeCertOptions(dir, p)
    clock.now = new Date()
    const r = await ensureCertificate(opts)
    t.equal(r.changed, true)
    t.equal(r.error, undefined)
    t.match(r.issuer, /^Pebble Intermediate CA /)
    t.same(r.names, ['sip.privatedial.test'])
    const log = logger.lines.join('\n')
    t.match(
      log,
      /creating a self-signed certificate reason="\S+cert\.pem does not exist"[^\n]*\n.*requesting a certificate from the CA reason="self-signed stand-in, no certificate from the CA yet" names=sip\.privatedial\.test/,
    )
    t.match(
      logger.lines.at(-1),
      new RegExp(
        `INFO  cert: certificate in use mode=acme issuer="Pebble Intermediate CA \\w+" names=sip\\.privatedial\\.test not_after=${r.notAfter.toISOString().replace(/\./g, '\\.')} next_check=\\S+ changed=true`,
      ),
    )
    t.equal((await stat(opts.keyFile)).mode & 0o777, 0o600)
    t.equal((await stat(join(dir, ACCOUNT_KEY_NAME))).mode & 0o777, 0o600, 'account key beside the certificate')
    const v = await opensslView(opts.certFile)
    t.match(v.issuer, /CN=Pebble Intermediate CA/)
    t.equal(v.publicKey, await opensslPublicKeyOf(opts.keyFile))
    t.same(v.notAfter, r.notAfter)
  })

  t.test('renewal not due, then due', async (t) => {
    const { p, dir } = await pebbleFor(t)
    const { opts, logger, clock } = acmeCertOptions(dir, p)
    clock.now = new Date()
    const issued = await ensureCertificate(opts)
    const info = describeCertificate(await readFile(opts.certFile))
    const lifetime = info.notAfter.getTime() - info.notBefore.getTime()

    clock.now = new Date(info.notBefore.getTime() + lifetime / 2)
    const notDue = await ensureCertificate(opts)
    t.equal(notDue.changed, false, 'half the lifetime left')
    t.equal(describeCertificate(await readFile(opts.certFile)).serial, info.serial)
    t.same(notDue.nextCheck, new Date(clock.now.getTime() + 12 * 3_600_000))

    clock.now = new Date(info.notAfter.getTime() - lifetime / 4)
    const due = await ensureCertificate(opts)
    t.equal(due.changed, true, 'a quarter left')
    const renewed = describeCertificate(await readFile(opts.certFile))
    t.not(renewed.serial, info.serial)
    t.match(renewed.issuer, /^Pebble Intermediate CA /)
    t.match(
      logger.lines.join('\n'),
      /requesting a certificate from the CA reason="\d+d( \d+h)? left of \d+d( \d+h)?, inside the renewal window"/,
    )
    // pebble dates its certificates from the real clock, which this test left years behind.
    t.match(logger.lines.join('\n'), /the new certificate is already due for renewal; is the clock right\?/)
    t.ok(issued.nextCheck)
  })

  t.test('CA down then back: backoff, the old certificate kept, then renewed and applied', async (t) => {
    const { p, dir } = await pebbleFor(t)
    const { opts, logger, clock } = acmeCertOptions(dir, p)
    clock.now = new Date()
    const start = await ensureCertificate(opts)
    const old = await readFile(opts.certFile, 'utf8')
    const oldKey = await readFile(opts.keyFile, 'utf8')

    const timers = manualTimers()
    const changes: CertResult[] = []
    const fresh = keepCertificateFresh(opts, (r) => void changes.push(r), { after: start, setTimer: timers.setTimer })
    t.teardown(() => fresh.stop())

    await p.stop()
    clock.now = new Date(start.notAfter.getTime() - 10 * DAY)
    await timers.fire()
    t.equal(await readFile(opts.certFile, 'utf8'), old, 'old certificate kept')
    t.equal(await readFile(opts.keyFile, 'utf8'), oldKey, 'old key kept')
    t.same(
      timers.next(),
      new Date(clock.now.getTime() + backoffDelay(1, () => 0.5)),
      'retry after the first backoff step',
    )
    t.match(
      logger.lines.join('\n'),
      /ERROR cert: keeping the certificate in use mode=acme issuer="Pebble Intermediate CA \w+" .* failures=1 error="obtaining a certificate for sip\.privatedial\.test from https:\/\/127\.0\.0\.1:\d+\/dir: cannot reach the CA: connect ECONNREFUSED/,
    )

    clock.now = timers.next()!
    await timers.fire()
    t.same(timers.next(), new Date(clock.now.getTime() + backoffDelay(2, () => 0.5)), 'doubled')
    t.equal(
      backoffDelay(2, () => 0.5),
      2 * backoffDelay(1, () => 0.5),
    )
    t.equal(changes.length, 0)
    t.equal(await readFile(opts.certFile, 'utf8'), old)

    await p.start()
    clock.now = timers.next()!
    await timers.fire()
    t.equal(changes.length, 1, 'applied once')
    t.equal(changes[0]?.error, undefined)
    t.not(await readFile(opts.certFile, 'utf8'), old, 'renewed')
    t.match(changes[0]?.issuer, /^Pebble Intermediate CA /)
    t.ok(timers.next()! > clock.now, 'and the loop goes on')
  })

  t.test('start without waiting for the CA: stand-in now, order placed by the first background check', async (t) => {
    const { p, dir } = await pebbleFor(t)
    const { opts, logger, clock } = acmeCertOptions(dir, p)
    clock.now = new Date()
    const r = await ensureCertificate(opts, { contactCa: false })
    t.equal(r.changed, true)
    t.equal(r.error, undefined)
    t.equal(r.issuer, 'sip.privatedial.test', 'self-signed stand-in')
    t.same(r.nextCheck, clock.now, 'due at once')
    t.notMatch(logger.lines.join('\n'), /ordering certificate/)

    const timers = manualTimers()
    const changes: CertResult[] = []
    const fresh = keepCertificateFresh(opts, (c) => void changes.push(c), { after: r, setTimer: timers.setTimer })
    t.teardown(() => fresh.stop())
    t.same(timers.next(), clock.now)
    await timers.fire()
    t.equal(changes.length, 1)
    t.match(changes[0]?.issuer, /^Pebble Intermediate CA /)
  })

  t.test('first start with the CA down: the stand-in serves, the failure is reported', async (t) => {
    const { p, dir } = await pebbleFor(t)
    await p.stop()
    const { opts, clock } = acmeCertOptions(dir, p)
    const r = await ensureCertificate(opts)
    t.equal(r.changed, true, 'Asterisk can start with TLS')
    t.equal(r.issuer, 'sip.privatedial.test', 'self-signed')
    t.equal(describeCertificate(await readFile(opts.certFile)).ours, true)
    t.match(r.error?.message, /cannot reach the CA: connect ECONNREFUSED/)
    t.same(r.nextCheck, new Date(clock.now.getTime() + backoffDelay(1, () => 0.5)))
  })
})
