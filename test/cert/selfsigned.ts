import t from 'tap'
import { readFile, stat, writeFile } from 'node:fs/promises'
import { hostname } from 'node:os'
import { join } from 'node:path'
import { execa } from 'execa'
import { ConfigError } from '../../src/base/errors.ts'
import { memoryLogger } from '../../src/base/log.ts'
import { describeCertificate } from '../../src/cert/info.ts'
import { createSelfSigned } from '../../src/cert/selfsigned.ts'
import { ensureCertificate, type CertOptions } from '../../src/cert/keeper.ts'
import { opensslPublicKeyOf, opensslView } from '../helpers/openssl.ts'

const DAY = 86_400_000
const T0 = new Date('2031-05-01T12:00:00Z')

function options(dir: string, clock: { now: Date }, extra: Partial<CertOptions> = {}) {
  const logger = memoryLogger('cert')
  const opts: CertOptions = {
    mode: 'selfsigned',
    certFile: join(dir, 'cert.pem'),
    keyFile: join(dir, 'priv_key.pem'),
    hostname: 'sip.example.com',
    logger,
    now: () => clock.now,
    random: () => 0,
    ...extra,
  }
  return { opts, logger }
}

t.test('certificate as openssl sees it: RSA 2048, CN and SAN from the name, server use', async (t) => {
  const dir = t.testdir()
  const kc = await createSelfSigned({ names: ['sip.example.com', '192.0.2.10', '2001:db8::5'], now: T0 })
  await writeFile(join(dir, 'c.pem'), kc.cert)
  await writeFile(join(dir, 'k.pem'), kc.key)
  const v = await opensslView(join(dir, 'c.pem'))
  t.equal(v.subject, 'O=PrivateDial,CN=sip.example.com')
  t.equal(v.issuer, v.subject, 'self-signed')
  t.match(v.text, /Public-Key: \(2048 bit\)/)
  t.match(v.text, /DNS:sip\.example\.com, IP Address:192\.0\.2\.10, IP Address:2001:DB8:0:0:0:0:0:5/)
  t.match(v.text, /TLS Web Server Authentication/)
  t.match(v.text, /CA:FALSE/)
  t.same(v.notAfter, new Date(T0.getTime() + 365 * DAY), 'a year from the clock, not from the wall')
  t.equal(v.publicKey, await opensslPublicKeyOf(join(dir, 'k.pem')), 'key and certificate belong together')
  const info = describeCertificate(kc.cert)
  t.equal(info.ours, true)
  t.same(info.names, ['sip.example.com', '192.0.2.10', '2001:db8::5'], 'IP addresses in the form normalizeName gives')
  await t.rejects(createSelfSigned({ names: [], now: T0 }), /expected at least one name, got none/)
})

t.test('created, reused while valid, renewed near expiry with the same key', async (t) => {
  const dir = t.testdir()
  const clock = { now: T0 }
  const { opts, logger } = options(dir, clock)

  const first = await ensureCertificate(opts)
  t.equal(first.changed, true, 'created')
  t.equal(first.issuer, 'sip.example.com')
  t.same(first.names, ['sip.example.com'])
  t.equal((await stat(opts.keyFile)).mode & 0o777, 0o600, 'private key 0600')
  t.equal((await stat(opts.certFile)).mode & 0o777, 0o644)
  t.match(logger.lines.join('\n'), /creating a self-signed certificate reason=".*cert\.pem does not exist"/)
  t.match(
    logger.lines.at(-1),
    /INFO  cert: certificate in use mode=selfsigned issuer=sip\.example\.com names=sip\.example\.com not_after=2032-04-30T12:00:00\.000Z next_check=2031-05-02T00:00:00\.000Z changed=true/,
  )
  const certBytes = await readFile(opts.certFile, 'utf8')
  const keyBytes = await readFile(opts.keyFile, 'utf8')

  clock.now = new Date(T0.getTime() + 200 * DAY)
  const reused = await ensureCertificate(opts)
  t.equal(reused.changed, false, 'reused: 165 of 365 days left is more than a third')
  t.equal(await readFile(opts.certFile, 'utf8'), certBytes)

  clock.now = new Date(T0.getTime() + 250 * DAY)
  const renewed = await ensureCertificate(opts)
  t.equal(renewed.changed, true, 'renewed: 115 days left is less than a third')
  t.match(
    logger.lines.join('\n'),
    /renewing the self-signed certificate reason="115d left of 365d 1h, inside the renewal window"/,
  )
  t.not(await readFile(opts.certFile, 'utf8'), certBytes)
  t.equal(await readFile(opts.keyFile, 'utf8'), keyBytes, 'same key, so phones that pinned it keep trusting')
  t.same(renewed.notAfter, new Date(clock.now.getTime() + 365 * DAY))
  t.equal((await opensslView(opts.certFile)).publicKey, await opensslPublicKeyOf(opts.keyFile))
  t.ok(renewed.nextCheck > clock.now)
})

t.test('a new name means a new certificate', async (t) => {
  const dir = t.testdir()
  const clock = { now: T0 }
  await ensureCertificate(options(dir, clock).opts)
  const moved = await ensureCertificate(options(dir, clock, { hostname: 'PBX.Exämple.org' }).opts)
  t.equal(moved.changed, true)
  t.same(moved.names, ['pbx.xn--exmple-cua.org'], 'IDNA, lower case')
  t.match((await opensslView(join(dir, 'cert.pem'))).text, /DNS:pbx\.xn--exmple-cua\.org/)
})

t.test('an IPv6 address as the external name: created once, then reused', async (t) => {
  const dir = t.testdir()
  const clock = { now: T0 }
  const { opts } = options(dir, clock, { hostname: '2001:DB8::0:7' })
  t.same((await ensureCertificate(opts)).names, ['2001:db8::7'])
  t.equal((await ensureCertificate(opts)).changed, false)
})

t.test('no external name: the host name', async (t) => {
  const dir = t.testdir()
  const r = await ensureCertificate(options(dir, { now: T0 }, { hostname: undefined }).opts)
  t.same(r.names, [hostname().toLowerCase()])
})

t.test('hostile names are refused before anything is written', async (t) => {
  for (const bad of ['sip example.com', 'sip.example.com;rm -rf /', 'a"b', 'x\ny', '*.example.com']) {
    const dir = t.testdir()
    await t.rejects(
      ensureCertificate(options(dir, { now: T0 }, { hostname: bad }).opts),
      new ConfigError([`SIP_EXTERNAL_HOST must be a DNS name or an IP address, got \`${bad}\``]),
      JSON.stringify(bad),
    )
  }
})

t.test('a certificate PrivateDial did not make is served, never replaced', async (t) => {
  const dir = t.testdir()
  const clock = { now: T0 }
  const { opts, logger } = options(dir, clock)
  // Stand-in for a user's own certificate: valid, for another name, not ours.
  await execa('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    opts.keyFile,
    '-out',
    opts.certFile,
    '-days',
    '1',
    '-subj',
    '/CN=mine.example.net',
  ])
  const before = await readFile(opts.certFile, 'utf8')
  clock.now = new Date(Date.now() + 30 * DAY)
  const r = await ensureCertificate(opts)
  t.equal(r.changed, false)
  t.equal(await readFile(opts.certFile, 'utf8'), before)
  t.match(
    logger.lines.join('\n'),
    /WARN  cert: the provided certificate needs renewing, which PrivateDial does not do for certificates it did not make reason="expired/,
  )
})

t.test('a key that does not belong to the certificate is replaced with a new pair', async (t) => {
  const dir = t.testdir()
  const clock = { now: T0 }
  const { opts, logger } = options(dir, clock)
  await ensureCertificate(opts)
  const other = await createSelfSigned({ names: ['sip.example.com'], now: T0 })
  await writeFile(opts.keyFile, other.key)
  const r = await ensureCertificate(opts)
  t.equal(r.changed, true)
  t.match(logger.lines.join('\n'), /reason=".*priv_key\.pem is not the private key of .*cert\.pem"/)
  t.equal((await opensslView(opts.certFile)).publicKey, await opensslPublicKeyOf(opts.keyFile))
})
