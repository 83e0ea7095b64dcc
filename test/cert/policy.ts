import t from 'tap'
import { ConfigError } from '../../src/base/errors.ts'
import {
  DEFAULT_BACKOFF,
  DEFAULT_RENEWAL,
  backoffDelay,
  chooseTlsMode,
  formatDuration,
  missingNames,
  nameMatches,
  normalizeName,
  renewalDecision,
} from '../../src/cert/policy.ts'

const DAY = 86_400_000
const HOUR = 3_600_000

t.test('mode: given or inferred', async (t) => {
  const cases: Array<[string, Parameters<typeof chooseTlsMode>[0], string, string]> = [
    ['nothing set', {}, 'selfsigned', 'inferred: no ACME_EMAIL, ACME_DOMAINS or ACME_FILE'],
    [
      'empty strings are unset',
      { mode: '', acmeEmail: ' ', acmeDomains: [''], acmeFile: '' },
      'selfsigned',
      'inferred: no ACME_EMAIL, ACME_DOMAINS or ACME_FILE',
    ],
    ['e-mail', { acmeEmail: 'me@example.com' }, 'acme', 'inferred: ACME_EMAIL is set'],
    ['domains as text', { acmeDomains: 'sip.example.com' }, 'acme', 'inferred: ACME_DOMAINS is set'],
    ['domains as list', { acmeDomains: ['sip.example.com'] }, 'acme', 'inferred: ACME_DOMAINS is set'],
    ['acme.json', { acmeFile: '/acme/acme.json' }, 'traefik', 'inferred: ACME_FILE is set'],
    [
      'ACME settings win over ACME_FILE',
      { acmeEmail: 'me@example.com', acmeFile: '/acme/acme.json' },
      'acme',
      'inferred: ACME_EMAIL is set',
    ],
    [
      'explicit beats inference',
      { mode: 'selfsigned', acmeEmail: 'me@example.com' },
      'selfsigned',
      'TLS_MODE=selfsigned',
    ],
    ['explicit, any case and spaces', { mode: ' ACME ' }, 'acme', 'TLS_MODE=acme'],
    ['explicit traefik with file', { mode: 'traefik', acmeFile: '/a.json' }, 'traefik', 'TLS_MODE=traefik'],
  ]
  for (const [name, inputs, mode, reason] of cases) t.same(chooseTlsMode(inputs), { mode, reason }, name)

  for (const bad of ['letsencrypt', 'self-signed', 'acme;rm', 'ac\nme', '“acme”']) {
    t.throws(
      () => chooseTlsMode({ mode: bad }),
      new ConfigError([`TLS_MODE must be one of selfsigned, acme, traefik, got \`${bad}\``]),
      JSON.stringify(bad),
    )
  }
  t.throws(() => chooseTlsMode({ mode: 'traefik' }), /TLS_MODE=traefik needs ACME_FILE/)
})

t.test('names: normalized or refused', async (t) => {
  const good: Array<[string, string]> = [
    ['SIP.Example.COM', 'sip.example.com'],
    ['sip.example.com.', 'sip.example.com'],
    [' sip.example.com ', 'sip.example.com'],
    ['sip.exämple.com', 'sip.xn--exmple-cua.com'],
    ['büro', 'xn--bro-hoa'],
    ['192.0.2.10', '192.0.2.10'],
    ['2001:db8::1', '2001:db8::1'],
    ['2001:DB8:0:0:0:0:0:1', '2001:db8::1'],
    ['a-b.c', 'a-b.c'],
  ]
  for (const [input, want] of good) t.equal(normalizeName(input), want, JSON.stringify(input))
  const bad = [
    '',
    ' ',
    'a b.com',
    'x;y.com',
    'sip.example.com=>x',
    'line\nbreak.com',
    'tab\tbed.com',
    'nul\u0000.com',
    '-lead.com',
    'trail-.com',
    '*.example.com',
    'a..b',
    `${'a'.repeat(64)}.com`,
    '"quoted".com',
  ]
  for (const input of bad) {
    t.throws(
      () => normalizeName(input, 'ACME_DOMAINS'),
      new ConfigError([`ACME_DOMAINS must be a DNS name or an IP address, got \`${input}\``]),
      JSON.stringify(input),
    )
  }
})

t.test('wildcards cover one label', async (t) => {
  const cases: Array<[string, string, boolean]> = [
    ['sip.example.com', 'sip.example.com', true],
    ['SIP.example.com', 'sip.EXAMPLE.com', true],
    ['*.example.com', 'sip.example.com', true],
    ['*.example.com', 'example.com', false],
    ['*.example.com', 'a.sip.example.com', false],
    ['*.example.com', '.example.com', false],
    ['*.example.com', 'sip.example.org', false],
    ['sip.example.com', 'other.example.com', false],
  ]
  for (const [cert, host, want] of cases) t.equal(nameMatches(cert, host), want, `${cert} ~ ${host}`)
  t.same(missingNames(['*.example.com', 'example.com'], ['example.com', 'sip.example.com', 'sip.example.org']), [
    'sip.example.org',
  ])
  t.same(missingNames([], ['a.com']), ['a.com'])
})

t.test('renewal: a third of the lifetime left, jitter after the window opens', async (t) => {
  const notBefore = new Date('2030-01-01T00:00:00Z')
  const notAfter = new Date(notBefore.getTime() + 90 * DAY)
  const v = { notBefore, notAfter }
  const windowOpens = new Date(notAfter.getTime() - 30 * DAY)

  const fresh = renewalDecision(v, new Date(notBefore.getTime() + DAY), () => 0)
  t.equal(fresh.renew, false)
  t.same(fresh.renewAt, windowOpens)
  t.same(
    fresh.nextCheck,
    new Date(notBefore.getTime() + DAY + DEFAULT_RENEWAL.checkEveryMs),
    'far from the window: look again after checkEveryMs',
  )
  t.match(fresh.reason, /^89d left of 90d, renewal window opens 2030-03-02T00:00:00.000Z$/)

  const justBefore = new Date(windowOpens.getTime() - HOUR)
  t.same(renewalDecision(v, justBefore, () => 0).nextCheck, windowOpens, 'no jitter: the moment the window opens')
  const jitterMax = Math.min(90 * DAY * DEFAULT_RENEWAL.jitterFraction, DEFAULT_RENEWAL.jitterMaxMs)
  t.equal(jitterMax, DAY, 'a fiftieth of 90 days is 1.8 days, capped at one')
  const rarely = { ...DEFAULT_RENEWAL, checkEveryMs: 30 * DAY }
  t.same(
    renewalDecision(v, justBefore, () => 0.5, rarely).nextCheck,
    new Date(windowOpens.getTime() + jitterMax / 2),
    'random 0.5: half the jitter after the window opens',
  )
  t.same(
    renewalDecision(v, justBefore, () => 0.5).nextCheck,
    new Date(justBefore.getTime() + DEFAULT_RENEWAL.checkEveryMs),
    'the periodic check comes first when sooner',
  )

  const inWindow = renewalDecision(v, windowOpens, () => 0.99)
  t.equal(inWindow.renew, true, 'the window is deterministic; jitter only moves the timer')
  t.match(inWindow.reason, /30d left of 90d, inside the renewal window/)

  const expired = renewalDecision(v, new Date(notAfter.getTime() + 2 * HOUR), Math.random)
  t.equal(expired.renew, true)
  t.equal(expired.reason, 'expired 2h ago')

  const empty = renewalDecision({ notBefore: notAfter, notAfter: notBefore }, notBefore, Math.random)
  t.equal(empty.renew, true)
  t.match(empty.reason, /validity period is empty/)

  // A 6-day certificate (Let's Encrypt's short-lived profile) renews with 2 days left.
  const short = { notBefore, notAfter: new Date(notBefore.getTime() + 6 * DAY) }
  t.equal(renewalDecision(short, new Date(notBefore.getTime() + 4 * DAY - 1000), () => 0).renew, false)
  t.equal(renewalDecision(short, new Date(notBefore.getTime() + 4 * DAY), () => 0).renew, true)
})

t.test('backoff: doubling from a minute, capped at six hours, upper-half jitter', async (t) => {
  const ceilings = [1, 2, 4, 8, 16, 32, 64, 128, 256, 360, 360].map((m) => m * 60_000)
  ceilings.forEach((ceiling, i) => {
    t.equal(
      backoffDelay(i + 1, () => 0),
      ceiling / 2,
      `failure ${i + 1}, random 0`,
    )
    t.equal(
      backoffDelay(i + 1, () => 1),
      ceiling,
      `failure ${i + 1}, random 1`,
    )
  })
  t.equal(
    backoffDelay(0, () => 1),
    60_000,
    'zero counts as the first failure',
  )
  t.equal(
    backoffDelay(10_000, () => 1),
    DEFAULT_BACKOFF.maxMs,
    'huge counts stay at the cap',
  )
  t.equal(
    backoffDelay(3, () => 1, { firstMs: 10, maxMs: 25 }),
    25,
  )
})

t.test('durations for the log', async (t) => {
  const cases: Array<[number, string]> = [
    [0, '0s'],
    [59_400, '59s'],
    [61_000, '1m 1s'],
    [HOUR, '1h'],
    [HOUR + 60_000, '1h 1m'],
    [90 * DAY + 5 * HOUR, '90d 5h'],
    [-2 * DAY, '-2d'],
  ]
  for (const [ms, want] of cases) t.equal(formatDuration(ms), want, String(ms))
})
