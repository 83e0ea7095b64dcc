import t, { type Test } from 'tap'
import { mkdirSync } from 'node:fs'
import { readFile, stat, writeFile } from 'node:fs/promises'
import { createServer, type AddressInfo, type Socket } from 'node:net'
import { join } from 'node:path'
import { memoryLogger } from '../../src/base/log.ts'
import { ConfigError } from '../../src/base/errors.ts'
import { describeCertificate } from '../../src/cert/info.ts'
import { acmeClientSettings, obtainAcmeCertificate, type AcmeOptions } from '../../src/cert/acme.ts'
import { resolveAcmeDirectory } from '../../src/cert/policy.ts'
import { freePort, pebbleMissing, startPebble, type Pebble, type PebbleOptions } from '../helpers/pebble.ts'
import { opensslPublicKeyOf, opensslView } from '../helpers/openssl.ts'

t.test('the installed acme-client has the retry setting our CA timeouts rely on', async (t) => {
  // Not public API: package.json pins the series that has it; an upgrade that drops it fails here.
  const settings = acmeClientSettings()
  t.ok(settings, 'acme.axios.defaults.acmeSettings exists')
  t.type(settings?.retryMaxAttempts, 'number')
})

t.test('ACME_DIRECTORY: production, staging or a URL', async (t) => {
  const cases: Array<[string | undefined, string]> = [
    [undefined, 'https://acme-v02.api.letsencrypt.org/directory'],
    ['', 'https://acme-v02.api.letsencrypt.org/directory'],
    ['production', 'https://acme-v02.api.letsencrypt.org/directory'],
    ['staging', 'https://acme-staging-v02.api.letsencrypt.org/directory'],
    [' Staging ', 'https://acme-staging-v02.api.letsencrypt.org/directory'],
    ['https://127.0.0.1:14000/dir', 'https://127.0.0.1:14000/dir'],
    ['https://acme.zerossl.com/v2/DV90', 'https://acme.zerossl.com/v2/DV90'],
  ]
  for (const [input, want] of cases) t.equal(resolveAcmeDirectory(input), want, JSON.stringify(input))
  for (const bad of [
    'letsencrypt',
    'http://ca.example/dir',
    'ftp://ca.example/dir',
    'https://',
    'https:// spaced.example/dir',
    'prod;uction',
  ]) {
    t.throws(
      () => resolveAcmeDirectory(bad),
      new ConfigError([
        `ACME_DIRECTORY must be \`production\`, \`staging\` or an https:// URL of an ACME directory, got \`${bad}\``,
      ]),
      JSON.stringify(bad),
    )
  }
})

t.test(
  'a CA that takes the connection and never answers: the order fails after the timeout instead of waiting forever',
  async (t) => {
    const silent = createServer(() => {})
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r))
    const sockets: Socket[] = []
    silent.on('connection', (s) => sockets.push(s))
    t.teardown(() => {
      for (const s of sockets) s.destroy()
      return new Promise((r) => silent.close(r))
    })
    const port = (silent.address() as AddressInfo).port
    const root = t.testdir()
    const order = obtainAcmeCertificate({
      directoryUrl: `https://127.0.0.1:${port}/dir`,
      domains: ['sip.privatedial.test'],
      accountKeyFile: join(root, 'acme_account_key.pem'),
      httpPort: 0,
      requestRetries: 0,
      requestTimeoutMs: 300,
      logger: memoryLogger('acme'),
    })
    // Bounded here so that a regression fails in seconds rather than at tap's timeout.
    const bound = new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error('still waiting for the CA after 10 s')), 10_000).unref(),
    )
    await t.rejects(Promise.race([order, bound]), {
      message: new RegExp(
        `^obtaining a certificate for sip\\.privatedial\\.test from https://127\\.0\\.0\\.1:${port}/dir: cannot reach the CA: no answer within 0\\.3 s$`,
      ),
    })
    t.ok(sockets.length >= 1, 'the CA was reached')
  },
)

const missing = pebbleMissing()

/** Pebble in <testdir>/pebble; `root` is the test's directory for everything else. */
async function pebble(t: Test, opts: Omit<PebbleOptions, 'dir'>): Promise<{ p: Pebble; root: string }> {
  const root = t.testdir()
  const p = await startPebble({ ...opts, dir: join(root, 'pebble') })
  t.teardown(() => p.stop())
  return { p, root }
}

/** A client with its own directory (account key, files) under the test's. */
function acmeOptions({ p, root }: { p: Pebble; root: string }, name: string, extra: Partial<AcmeOptions> = {}) {
  const dir = join(root, name)
  mkdirSync(dir)
  const logger = memoryLogger('acme')
  const opts: AcmeOptions = {
    directoryUrl: p.directoryUrl,
    email: 'admin@privatedial.test',
    domains: ['sip.privatedial.test'],
    accountKeyFile: join(dir, 'acme_account_key.pem'),
    httpPort: p.httpPort,
    httpAddress: '127.0.0.1',
    caCert: p.caCert,
    requestRetries: 0,
    logger,
    ...extra,
  }
  return { opts, logger, dir }
}

t.test('against pebble', { skip: missing }, async (t) => {
  t.test('issuance (always valid): ECDSA P-256 certificate, account key kept and reused', async (t) => {
    const pb = await pebble(t, { alwaysValid: true })
    const { opts, dir } = acmeOptions(pb, 'client', { domains: ['sip.privatedial.test', 'pbx.privatedial.test'] })
    const kc = await obtainAcmeCertificate(opts)
    const info = describeCertificate(kc.cert)
    t.same(info.names.sort(), ['pbx.privatedial.test', 'sip.privatedial.test'])
    t.match(info.issuer, /^Pebble Intermediate CA /)
    t.equal(info.selfSigned, false)
    t.match(kc.cert, /-----END CERTIFICATE-----\n-----BEGIN CERTIFICATE-----/, 'the chain comes with the leaf')

    await writeFile(join(dir, 'c.pem'), kc.cert)
    await writeFile(join(dir, 'k.pem'), kc.key)
    const v = await opensslView(join(dir, 'c.pem'))
    t.match(v.text, /ASN1 OID: prime256v1/, 'certificate key is P-256')
    t.equal(v.publicKey, await opensslPublicKeyOf(join(dir, 'k.pem')))

    t.equal((await stat(opts.accountKeyFile)).mode & 0o777, 0o600, 'account key 0600')
    t.match(await readFile(opts.accountKeyFile, 'utf8'), /^-----BEGIN PRIVATE KEY-----/)
    const account = await readFile(opts.accountKeyFile, 'utf8')
    const again = await obtainAcmeCertificate(opts)
    t.not(describeCertificate(again.cert).serial, info.serial, 'a second certificate')
    t.not(again.key, kc.key, 'with a fresh certificate key')
    t.equal(await readFile(opts.accountKeyFile, 'utf8'), account, 'but the same account key')
  })

  t.test('HTTP-01 really validated by pebble against our listener', async (t) => {
    const httpPort = await freePort()
    const pb = await pebble(t, { alwaysValid: false, httpPort })
    const { opts, logger } = acmeOptions(pb, 'client', { domains: ['sip.privatedial.test', 'pbx.privatedial.test'] })
    const kc = await obtainAcmeCertificate(opts)
    t.same(describeCertificate(kc.cert).names.sort(), ['pbx.privatedial.test', 'sip.privatedial.test'])
    const log = logger.lines.join('\n')
    t.match(log, /HTTP-01 listener open port=\d+ address=127\.0\.0\.1/)
    t.match(
      log,
      /HTTP-01 request method=GET path=\/\.well-known\/acme-challenge\/\S+ from=(127\.0\.0\.1|::ffff:127\.0\.0\.1) answered=true/,
      'pebble fetched the answer',
    )
    t.match(log, /HTTP-01 listener closed/)
    t.match(pb.p.output(), /authz \S+ set VALID by completed challenge/)
    // Closed after the order: nothing listens on the port any more.
    await new Promise<void>((resolve, reject) => {
      const probe = createServer().once('error', reject)
      probe.listen(httpPort, '127.0.0.1', () => probe.close(() => resolve()))
    })
  })

  t.test('HTTP-01 port taken: the error names it, and nothing is left listening', async (t) => {
    const httpPort = await freePort()
    const pb = await pebble(t, { alwaysValid: false, httpPort })
    const squatter = createServer()
    await new Promise<void>((resolve) => squatter.listen(httpPort, '127.0.0.1', resolve))
    t.teardown(() => new Promise<void>((resolve) => squatter.close(() => resolve())))
    const { opts } = acmeOptions(pb, 'client')
    await t.rejects(obtainAcmeCertificate(opts), {
      message: new RegExp(
        `^obtaining a certificate for sip\\.privatedial\\.test from ${pb.p.directoryUrl.replace(/[.]/g, '\\.')}: listening for ACME HTTP-01 challenges on 127\\.0\\.0\\.1:${httpPort}: .*EADDRINUSE`,
      ),
    })
  })

  t.test('external account binding required by the CA', async (t) => {
    const hmacKey = 'zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W'
    const pb = await pebble(t, { alwaysValid: true, eabKeys: { 'kid-privatedial': hmacKey } })

    const without = acmeOptions(pb, 'without')
    await t.rejects(
      obtainAcmeCertificate(without.opts),
      {
        message:
          /: ACME server policy requires newAccount requests must include a value for the 'externalAccountBinding' field$/,
      },
      'refused without EAB',
    )

    const wrong = acmeOptions(pb, 'wrong', {
      eab: { kid: 'kid-privatedial', hmacKey: 'b10lLJs8l1GPIzsLP0s6pMt8O0XVGnfTaCeROxQM0BIt2XrJMDHJZBM5NuQmQJQH' },
    })
    await t.rejects(
      obtainAcmeCertificate(wrong.opts),
      { message: /: external account binding JWS verification error/ },
      'refused with the wrong HMAC key',
    )

    const right = acmeOptions(pb, 'right', { eab: { kid: 'kid-privatedial', hmacKey } })
    const kc = await obtainAcmeCertificate(right.opts)
    t.same(describeCertificate(kc.cert).names, ['sip.privatedial.test'])
    t.match(right.logger.lines.join('\n'), /eab_kid=kid-privatedial/)
    for (const l of [without, wrong, right])
      t.notMatch(l.logger.lines.join('\n'), /zWNDZM6e|b10lLJs8/, 'the HMAC key is never logged')
  })

  t.test('CA unreachable: the error says what and where, fast with no retries', async (t) => {
    const pb = await pebble(t, { alwaysValid: true })
    await pb.p.stop()
    const { opts } = acmeOptions(pb, 'client')
    await t.rejects(obtainAcmeCertificate(opts), {
      message: new RegExp(
        `^obtaining a certificate for sip\\.privatedial\\.test from https://127\\.0\\.0\\.1:\\d+/dir: cannot reach the CA: connect ECONNREFUSED 127\\.0\\.0\\.1:\\d+$`,
      ),
    })
  })

  t.test("CA's TLS certificate not trusted without caCert", async (t) => {
    const pb = await pebble(t, { alwaysValid: true })
    const { opts } = acmeOptions(pb, 'client', { caCert: undefined })
    await t.rejects(obtainAcmeCertificate(opts), { message: /: cannot reach the CA: self-signed certificate/ })
  })

  t.test('an account key file that is not a key is never replaced', async (t) => {
    const pb = await pebble(t, { alwaysValid: true })
    const { opts } = acmeOptions(pb, 'client')
    await writeFile(opts.accountKeyFile, 'not a key\n', { mode: 0o600 })
    await t.rejects(obtainAcmeCertificate(opts), {
      message:
        /^reading the ACME account key .*acme_account_key\.pem: expected a PEM private key, got something else; move it away to start a new account/,
    })
    t.equal(await readFile(opts.accountKeyFile, 'utf8'), 'not a key\n')
  })
})
