import t from 'tap'
import { readFile, rename, stat, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { memoryLogger } from '../../src/base/log.ts'
import { describeCertificate } from '../../src/cert/info.ts'
import { createSelfSigned, type KeyAndCert } from '../../src/cert/selfsigned.ts'
import { findTraefikCertificate, readTraefikCertificate } from '../../src/cert/traefik.ts'
import { ensureCertificate, keepCertificateFresh, type CertOptions, type CertResult } from '../../src/cert/keeper.ts'
import { opensslPublicKeyOf, opensslView } from '../helpers/openssl.ts'
import { waitFor } from '../helpers/wait-for.ts'

const DAY = 86_400_000
const T0 = new Date('2031-05-01T12:00:00Z')
const b64 = (s: string) => Buffer.from(s).toString('base64')

// Certificates as Traefik would hold them; self-signed is enough, only names and dates matter here.
const sip = await createSelfSigned({ names: ['sip.example.com'], now: T0, days: 90 })
const wildcard = await createSelfSigned({ names: ['*.example.com', 'example.com'], now: T0, days: 60 })
const later = await createSelfSigned({ names: ['sip.example.com'], now: new Date(T0.getTime() + 30 * DAY), days: 90 })

const v16 = (entries: Array<[string, string[], KeyAndCert]>) => ({
  Email: 'admin@example.com',
  DomainsCertificate: {
    Certs: entries.map(([main, sans, kc]) => ({
      Domains: { Main: main, SANs: sans },
      Certificate: {
        Domain: main,
        CertURL: 'https://acme/cert/1',
        CertStableURL: '',
        PrivateKey: b64(kc.key),
        Certificate: b64(kc.cert),
      },
    })),
  },
})
const v17 = (entries: Array<[string, string[] | null, KeyAndCert]>) => ({
  Account: { Email: 'admin@example.com' },
  Certificates: entries.map(([main, sans, kc]) => ({
    Domain: { Main: main, SANs: sans },
    Certificate: b64(kc.cert),
    Key: b64(kc.key),
  })),
  HTTPChallenges: {},
})
const v2 = (resolvers: Record<string, Array<[string, string[] | undefined, KeyAndCert]>>) =>
  Object.fromEntries(
    Object.entries(resolvers).map(([name, entries]) => [
      name,
      {
        Account: { Email: 'admin@example.com', Registration: {}, PrivateKey: 'xx', KeyType: '4096' },
        Certificates: entries.map(([main, sans, kc]) => ({
          domain: { main, ...(sans ? { sans } : {}) },
          certificate: b64(kc.cert),
          key: b64(kc.key),
          Store: 'default',
        })),
      },
    ]),
  )

t.test('finding our certificate in every layout Traefik wrote', async (t) => {
  const fp = (kc: KeyAndCert) => describeCertificate(kc.cert).fingerprint
  const cases: Array<{
    name: string
    doc: unknown
    wanted: string[]
    layout: string
    want?: KeyAndCert
    resolver?: string
  }> = [
    {
      name: 'Traefik 1.0-1.6',
      doc: v16([['sip.example.com', [], sip]]),
      wanted: ['sip.example.com'],
      layout: 'v1',
      want: sip,
    },
    {
      name: 'Traefik 1.7',
      doc: v17([
        ['other.example.net', null, wildcard],
        ['sip.example.com', null, sip],
      ]),
      wanted: ['sip.example.com'],
      layout: 'v1',
      want: sip,
    },
    {
      name: 'Traefik 2+',
      doc: v2({ le: [['sip.example.com', undefined, sip]] }),
      wanted: ['sip.example.com'],
      layout: 'v2',
      want: sip,
      resolver: 'le',
    },
    {
      name: 'wildcard in SANs',
      doc: v2({ dns: [['example.com', ['*.example.com'], wildcard]] }),
      wanted: ['pbx.example.com'],
      layout: 'v2',
      want: wildcard,
      resolver: 'dns',
    },
    {
      name: 'wildcard as main, v1',
      doc: v16([['*.example.com', ['example.com'], wildcard]]),
      wanted: ['pbx.example.com', 'example.com'],
      layout: 'v1',
      want: wildcard,
    },
    {
      name: 'the longest-lasting of two',
      doc: v2({ a: [['sip.example.com', undefined, sip]], b: [['sip.example.com', undefined, later]] }),
      wanted: ['sip.example.com'],
      layout: 'v2',
      want: later,
      resolver: 'b',
    },
    {
      name: 'every wanted name must be covered',
      doc: v2({ le: [['sip.example.com', undefined, sip]] }),
      wanted: ['sip.example.com', 'pbx.example.com'],
      layout: 'v2',
    },
    {
      name: 'a wildcard covers one label only',
      doc: v2({ le: [['*.example.com', undefined, wildcard]] }),
      wanted: ['a.sip.example.com'],
      layout: 'v2',
    },
    { name: 'not there', doc: v17([['sip.example.com', null, sip]]), wanted: ['sip.example.org'], layout: 'v1' },
    {
      name: 'field names in any case, as Go reads them',
      doc: {
        le: { certificates: [{ DOMAIN: { Main: 'sip.example.com' }, CERTIFICATE: b64(sip.cert), KEY: b64(sip.key) }] },
      },
      wanted: ['sip.example.com'],
      layout: 'v2',
      want: sip,
      resolver: 'le',
    },
    {
      name: 'Traefik started, nothing issued yet',
      doc: { le: { Account: null, Certificates: null } },
      wanted: ['sip.example.com'],
      layout: 'v2',
    },
    { name: 'empty file written by hand', doc: {}, wanted: ['sip.example.com'], layout: 'empty' },
  ]
  for (const c of cases) {
    const r = findTraefikCertificate(c.doc, c.wanted)
    t.equal(r.layout, c.layout, `${c.name}: layout`)
    t.equal(r.found && r.found.info.fingerprint, c.want && fp(c.want), `${c.name}: certificate`)
    if (c.want) {
      t.equal(r.found?.key, c.want.key, `${c.name}: key`)
      t.equal(r.found?.resolver, c.resolver, `${c.name}: resolver`)
    }
    t.same(r.problems, [], `${c.name}: no problems`)
  }
})

t.test('broken entries are reported and skipped', async (t) => {
  const doc = v2({ le: [['sip.example.com', undefined, sip]] }) as Record<
    string,
    { Certificates: Array<Record<string, unknown>> }
  >
  doc.le!.Certificates.unshift({
    domain: { main: 'sip.example.com' },
    certificate: b64('not a pem'),
    key: b64(sip.key),
  })
  doc.le!.Certificates.push({ domain: { main: 'sip.example.com' }, certificate: b64(sip.cert) })
  doc.le!.Certificates.push({
    domain: { main: 'sip.example.com', sans: ['x.example.com'] },
    certificate: b64(later.cert),
    key: b64(wildcard.key),
  })
  const r = findTraefikCertificate(doc, ['sip.example.com'])
  t.equal(
    r.found?.info.fingerprint,
    describeCertificate(sip.cert).fingerprint,
    'the one good entry, though another lasts longer',
  )
  t.same(r.problems, [
    'le.Certificates[0] (sip.example.com): certificate is not base64 of a PEM block',
    'le.Certificates[2] (sip.example.com): key is not base64 of a PEM block',
    'le.Certificates[3] (sip.example.com, x.example.com): key does not belong to the certificate',
  ])
  t.same(findTraefikCertificate(['not', 'an', 'object'], ['sip.example.com']), {
    layout: 'empty',
    problems: ['expected a JSON object at the top'],
  })
})

t.test('reading the file: errors name it', async (t) => {
  const dir = t.testdir({
    'bad.json': '{"le": {"Certificates": [',
    'good.json': JSON.stringify(v17([['sip.example.com', null, sip]])),
  })
  await t.rejects(readTraefikCertificate(join(dir, 'absent.json'), ['sip.example.com']), {
    message: /^reading Traefik's certificate store .*absent\.json: ENOENT/,
  })
  await t.rejects(readTraefikCertificate(join(dir, 'bad.json'), ['sip.example.com']), {
    message: /^reading Traefik's certificate store .*bad\.json: .*JSON/,
  })
  t.ok((await readTraefikCertificate(join(dir, 'good.json'), ['sip.example.com'])).found)
})

function traefikOptions(dir: string) {
  const logger = memoryLogger('cert')
  const clock = { now: T0 }
  const opts: CertOptions = {
    mode: 'traefik',
    certFile: join(dir, 'asterisk', 'cert.pem'),
    keyFile: join(dir, 'asterisk', 'priv_key.pem'),
    hostname: 'sip.example.com',
    traefikFile: join(dir, 'traefik', 'acme.json'),
    logger,
    now: () => clock.now,
    random: () => 0.5,
  }
  return { opts, logger, clock }
}

// Replace the file the way Traefik and editors do: write beside it, rename over it.
async function replaceFile(file: string, data: unknown) {
  await writeFile(`${file}.tmp`, JSON.stringify(data))
  await rename(`${file}.tmp`, file)
}

t.test('imported into cert_file / priv_key_file; nothing rewritten when unchanged', async (t) => {
  const dir = t.testdir({ traefik: { 'acme.json': JSON.stringify(v2({ le: [['sip.example.com', undefined, sip]] })) } })
  const { opts, logger } = traefikOptions(dir)
  const r = await ensureCertificate(opts)
  t.equal(r.changed, true)
  t.equal(r.error, undefined)
  t.same(r.notAfter, describeCertificate(sip.cert).notAfter)
  t.equal(await readFile(opts.keyFile, 'utf8'), sip.key)
  t.equal((await stat(opts.keyFile)).mode & 0o777, 0o600)
  t.equal((await opensslView(opts.certFile)).publicKey, await opensslPublicKeyOf(opts.keyFile))
  t.match(
    logger.lines.join('\n'),
    /importing certificate from Traefik file=\S+acme\.json resolver=le issuer=sip\.example\.com names=sip\.example\.com not_after=2031-07-30T12:00:00\.000Z/,
  )
  t.same(
    r.nextCheck,
    new Date(T0.getTime() + 12 * 3_600_000),
    'Traefik renews; we look twice a day and on every change',
  )

  const again = await ensureCertificate(opts)
  t.equal(again.changed, false)
})

t.test('no certificate for us yet: a self-signed stand-in, and the reason', async (t) => {
  const dir = t.testdir({ traefik: { 'acme.json': JSON.stringify(v2({ le: [['www.example.org', undefined, sip]] })) } })
  const { opts, logger } = traefikOptions(dir)
  const r = await ensureCertificate(opts)
  t.equal(r.changed, true, 'Asterisk gets something to start with')
  t.equal(describeCertificate(await readFile(opts.certFile)).ours, true)
  t.match(r.error?.message, /acme\.json \(v2 layout\) holds no certificate for sip\.example\.com$/)
  t.same(r.nextCheck, new Date(T0.getTime() + 45_000), 'first retry: backoff, random 0.5 of one minute above half')
  t.match(
    logger.lines.at(-1),
    /ERROR cert: keeping the certificate in use mode=traefik issuer=sip\.example\.com .* failures=1 error=/,
  )
})

t.test('a change to acme.json is picked up and applied', async (t) => {
  const dir = t.testdir({ traefik: { 'acme.json': JSON.stringify(v16([['sip.example.com', [], sip]])) } })
  const { opts, logger } = traefikOptions(dir)
  const first = await ensureCertificate(opts)
  const changes: CertResult[] = []
  const timers: Date[] = []
  const fresh = keepCertificateFresh(opts, (r) => void changes.push(r), {
    after: first,
    debounceMs: 50,
    setTimer: (at) => {
      timers.push(at)
      return () => {}
    },
  })
  t.teardown(() => fresh.stop())
  await fresh.ready
  t.same(timers, [first.nextCheck], 'the periodic check is scheduled from the start result')

  // Traefik renewed (and moved to the 2.x layout on upgrade).
  await replaceFile(opts.traefikFile!, v2({ le: [['sip.example.com', undefined, later]] }))
  await waitFor('the new certificate to be applied', () => changes.length === 1)
  t.same(changes[0]?.notAfter, describeCertificate(later.cert).notAfter)
  t.equal(await readFile(opts.keyFile, 'utf8'), later.key)
  t.equal(describeCertificate(await readFile(opts.certFile)).fingerprint, describeCertificate(later.cert).fingerprint)

  // Same bytes again: seen, compared, nothing done.
  await replaceFile(opts.traefikFile!, v2({ le: [['sip.example.com', undefined, later]] }))
  await waitFor('the rewrite to be noticed', () =>
    logger.lines.some((l) => l.includes('file event with unchanged content')),
  )
  t.equal(changes.length, 1)

  // Other content, same certificate for us (Traefik added another domain): read, nothing written.
  const checks = () => logger.lines.filter((l) => l.includes('certificate in use')).length
  const checksBefore = checks()
  await replaceFile(
    opts.traefikFile!,
    v2({
      le: [
        ['sip.example.com', undefined, later],
        ['*.example.com', undefined, wildcard],
      ],
    }),
  )
  await waitFor('the check after the third change', () => checks() === checksBefore + 1)
  t.equal(changes.length, 1)
  t.match(logger.lines.filter((l) => l.includes('certificate in use')).at(-1), /changed=false/)
})
