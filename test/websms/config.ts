import t from 'tap'
import { generateKeyPairSync } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { parseConf } from '../../src/config/conf.ts'
import { ConfigError } from '../../src/base/errors.ts'
import { DEFAULT_API_PORT, parseWebsmsConf, websmsWiring, type Itsp } from '../../src/websms/config.ts'
import { SHIPPED_CONFIG } from '../helpers/asterisk.ts'

const publicKey = () =>
  Buffer.from(generateKeyPairSync('ed25519').publicKey.export({ format: 'jwk' }).x!, 'base64url').toString('base64')

function one(text: string): Itsp {
  const itsps = [...parseWebsmsConf(text).itsps.values()]
  if (itsps.length !== 1) throw new Error(`expected one ITSP, got ${itsps.length}`)
  return itsps[0]!
}

function problems(text: string): string[] {
  try {
    parseWebsmsConf(text)
  } catch (err) {
    if (err instanceof ConfigError) return err.problems
    throw err
  }
  return []
}

t.test('the shipped websms.conf defines no ITSP: WebSMS is off until one is added', async (t) => {
  t.equal(parseWebsmsConf(readFileSync(`${SHIPPED_CONFIG}/websms.conf`, 'utf8')).itsps.size, 0)
})

t.test("the shipped examples, uncommented, are valid and say what each ITSP's docs say", async (t) => {
  const text = readFileSync(`${SHIPPED_CONFIG}/websms.conf`, 'utf8')
    .split('\n')
    .map((l) => (/^;(\[|[a-z_]+ = )/.test(l) ? l.slice(1) : l))
    .join('\n')
  const itsps = parseWebsmsConf(text).itsps
  t.same([...itsps.keys()], ['elks', 'telnyx', 'myitsp'])
  const elks = itsps.get('elks')!
  t.equal(elks.outbound.url.href, 'https://api.46elks.com/a1/sms')
  t.same(
    [elks.outbound.method, elks.outbound.encoding, elks.outbound.auth.kind, elks.outbound.numberFormat],
    ['POST', 'form', 'basic', 'e164'],
  )
  t.same(elks.outbound.fields, { to: 'to', from: 'from', body: 'message' })
  t.same(elks.inbound?.fields, { to: 'to', from: 'from', body: 'message' })
  t.equal(elks.inbound?.auth.kind, 'path')
  const telnyx = itsps.get('telnyx')!
  t.equal(telnyx.outbound.url.href, 'https://api.telnyx.com/v2/messages')
  t.same([telnyx.outbound.encoding, telnyx.outbound.auth.kind], ['json', 'bearer'])
  t.same(telnyx.outbound.fields, { to: 'to', from: 'from', body: 'text' })
  t.same(telnyx.outbound.static, [['messaging_profile_id', '00000000-0000-0000-0000-000000000000']])
  t.same(telnyx.inbound?.fields, {
    to: 'data.payload.to.0.phone_number',
    from: 'data.payload.from.phone_number',
    body: 'data.payload.text',
  })
  t.same(telnyx.inbound?.match, [['data.event_type', 'message.received']])
  t.equal(telnyx.inbound?.auth.kind, 'ed25519')
  const generic = itsps.get('myitsp')!
  t.same(
    [generic.outbound.auth, generic.outbound.numberFormat],
    [{ kind: 'header', name: 'X-Api-Key', token: 'secret-api-key' }, 'digits'],
  )
  t.ok(generic.inbound?.allow?.check('192.0.2.77'))
  t.notOk(generic.inbound?.allow?.check('198.51.100.1'))
})

t.test('a preset is only defaults: any key overrides it', async (t) => {
  const itsp = one(
    '[elks]\npreset = 46elks\nusername = u\npassword = p\nurl = http://127.0.0.1:8080/a1/sms\nbody_field = text\nnumber_format = DIGITS\nmethod = put\n',
  )
  t.equal(itsp.outbound.url.href, 'http://127.0.0.1:8080/a1/sms', 'http:// is fine to this host')
  t.equal(itsp.outbound.fields.body, 'text')
  t.equal(itsp.outbound.numberFormat, 'digits', 'choices are case-insensitive')
  t.equal(itsp.outbound.method, 'PUT')
  t.equal(itsp.inbound, undefined, 'no webhooks unless inbound_auth says how they are checked')
})

t.test('every inbound authentication', async (t) => {
  const base =
    '[x]\npreset = generic\nurl = https://api.example.net/send\nto_field = to\nfrom_field = from\nbody_field = text\ninbound_to = to\ninbound_from = from\ninbound_body = text\n'
  const key = publicKey()
  const cases: Array<[string, string]> = [
    ['path', 'inbound_secret = abcdefghijklmnop-_.~'],
    ['header', 'inbound_secret = s3cret with spaces \\; and ☃'],
    ['basic', 'inbound_username = itsp\ninbound_password = 0123456789abcdef'],
    ['ed25519', `inbound_public_key = ${key}`],
    ['none', 'allow = 192.0.2.0/24 2001:db8::/32, 198.51.100.7'],
  ]
  for (const [kind, keys] of cases) {
    const itsp = one(`${base}inbound_auth = ${kind}\n${keys}\n`)
    t.equal(itsp.inbound?.auth.kind, kind, kind)
  }
  const header = one(`${base}inbound_auth = header\ninbound_secret = s3cret "with" spaces \\; ☃ => x ; a comment\n`)
    .inbound!.auth
  t.same(
    header,
    { kind: 'header', name: 'x-webhook-secret', secret: 's3cret "with" spaces ; ☃ => x' },
    'an escaped ; is kept; after a plain one is a comment',
  )
})

t.test('problems name the file, the line, the section, the key, what is expected and what was found', async (t) => {
  const cases: Array<[string, string, RegExp]> = [
    [
      'unknown key',
      '[x]\npreset = 46elks\nusername = u\npassword = p\nfoo = bar\n',
      /^websms\.conf:5: \[x\] unknown key `foo`; expected one of preset, /,
    ],
    [
      'a key named like a property of every object',
      '[x]\npreset = telnyx\ntoken = t\nconstructor = x\n',
      /^websms\.conf:4: \[x\] unknown key `constructor`/,
    ],
    [
      'bad preset',
      '[x]\npreset = twilio\n',
      /^websms\.conf:2: \[x\] preset must be one of 46elks, telnyx, generic, got `twilio`/,
    ],
    [
      'missing credentials',
      '[x]\npreset = 46elks\npassword = p\n',
      /^websms\.conf:1: \[x\] needs username \(auth = basic\)/,
    ],
    [
      'plain http elsewhere',
      '[x]\npreset = telnyx\ntoken = t\nurl = http://api.telnyx.com/v2/messages\n',
      /^websms\.conf:4: \[x\] url must be an https:\/\/ URL \(http:\/\/ only to this host\), got `http:\/\/api\.telnyx\.com\/v2\/messages`/,
    ],
    [
      'credentials in the URL',
      '[x]\npreset = telnyx\ntoken = t\nurl = https://u:p@api.telnyx.com/\n',
      /^websms\.conf:4: \[x\] url must not carry credentials/,
    ],
    [
      'not a URL',
      '[x]\npreset = telnyx\ntoken = t\nurl = api.telnyx.com\n',
      /url must be an https:\/\/ URL, got `api\.telnyx\.com`/,
    ],
    [
      'set twice',
      '[x]\npreset = telnyx\ntoken = t\ntoken = u\n',
      /^websms\.conf:4: \[x\] token is set again \(first on line 3\); set it once/,
    ],
    ['=>', '[x]\npreset => telnyx\ntoken = t\n', /^websms\.conf:2: \[x\] `preset =>`: expected `preset = value`/],
    [
      'short path secret',
      '[x]\npreset = telnyx\ntoken = t\ninbound_auth = path\ninbound_secret = tooshort\n',
      /^websms\.conf:5: \[x\] inbound_secret must be at least 16 characters of A-Z a-z 0-9 \. _ ~ - \(not shown\)/,
    ],
    [
      'path secret with /',
      '[x]\npreset = telnyx\ntoken = t\ninbound_auth = path\ninbound_secret = abcdefgh/ijklmnopq\n',
      /inbound_secret must be at least 16 characters of A-Z/,
    ],
    [
      'no auth, no allow',
      '[x]\npreset = telnyx\ntoken = t\ninbound_auth = none\n',
      /^websms\.conf:4: \[x\] inbound_auth = none takes webhooks from anyone; set allow/,
    ],
    [
      'bad network',
      '[x]\npreset = telnyx\ntoken = t\ninbound_auth = none\nallow = 10.0.0.0/33\n',
      /^websms\.conf:5: \[x\] allow must be addresses or address\/prefix networks, comma separated \(`10\.0\.0\.0\/33` is not/,
    ],
    [
      'allow without inbound',
      '[x]\npreset = telnyx\ntoken = t\nallow = 10.0.0.0/8\n',
      /^websms\.conf:4: \[x\] allow has no effect while inbound_auth is off/,
    ],
    [
      'bad key',
      '[x]\npreset = telnyx\ntoken = t\ninbound_auth = ed25519\ninbound_public_key = not-a-key\n',
      /^websms\.conf:5: \[x\] inbound_public_key must be a base64 Ed25519 public key \(32 bytes\), got `not-a-key`/,
    ],
    [
      'field with a space',
      '[x]\npreset = telnyx\ntoken = t\nto_field = to me\n',
      /^websms\.conf:4: \[x\] to_field must be a field name without spaces, got `to me`/,
    ],
    [
      'static without =',
      '[x]\npreset = telnyx\ntoken = t\nstatic = flash\n',
      /^websms\.conf:4: \[x\] static must be name=value, got `flash`/,
    ],
    [
      'bad header name',
      '[x]\npreset = generic\nurl = https://a.example/\nto_field = t\nfrom_field = f\nbody_field = b\nauth = header\nauth_header = X Key\ntoken = t\n',
      /auth_header must be an HTTP header name, got `X Key`/,
    ],
    [
      'a section name that is no WEBSMS_INDEX',
      '[my itsp]\npreset = telnyx\n',
      /^websms\.conf:1: \[my itsp\] section names are WEBSMS_INDEX values/,
    ],
    ['a template', '[x](!)\npreset = telnyx\n', /^websms\.conf:1: \[x\] templates and \(\+\) are not supported/],
    [
      'twice',
      '[x]\npreset = telnyx\ntoken = t\n[x]\npreset = telnyx\ntoken = t\n',
      /^websms\.conf:4: \[x\] is defined again \(first on line 1\)/,
    ],
    ['syntax', '[x]\npreset\n', /^websms\.conf:2: expected `key = value`/],
    [
      'Unicode and quotes',
      '[x]\npreset = "46elks" ☃\n',
      /preset must be one of 46elks, telnyx, generic, got `"46elks" ☃`/,
    ],
  ]
  for (const [what, text, re] of cases) {
    const got = problems(text)
    t.equal(got.length, 1, `${what}: one problem\n${got.join('\n')}`)
    t.match(got[0], re, what)
  }
})

t.test('secrets are never echoed in a problem', async (t) => {
  const got = problems(
    '[x]\npreset = telnyx\ntoken = hunter2-hunter2\ntoken = other-secret-value\ninbound_auth = basic\ninbound_username = u\ninbound_password = short-pw\n',
  )
  t.ok(got.length >= 2)
  for (const p of got) t.notMatch(p, /hunter2|other-secret|short-pw/)
})

t.test('every problem at once', async (t) => {
  t.equal(problems('[a]\npreset = x\n[b]\npreset = telnyx\n[c]\nurl = ftp://x\n').length, 6)
})

t.test(
  "wiring: the API port and country code from the dial plan's [globals], Asterisk's UDP port through [udp]'s template",
  async (t) => {
    const doc = (text: string, file: string) => parseConf(text, file)
    const shipped = (f: string) => doc(readFileSync(`${SHIPPED_CONFIG}/${f}`, 'utf8'), f)
    const dialplan = [shipped('extensions.conf'), shipped('extensions_local.conf')]
    const pjsip = [shipped('pjsip.conf'), shipped('pjsip_transport.conf')]
    t.same(websmsWiring(dialplan, pjsip), {
      apiPort: DEFAULT_API_PORT,
      sip: { host: '127.0.0.1', port: 5060 },
      countryCode: '1',
    })

    const transport = (bind: string) =>
      doc(`[t_wan](!)\nbind = 0.0.0.0:5060\n[udp](t_wan)\nprotocol = udp\n${bind}`, 'pjsip_transport.conf')
    const cases: Array<[string, { host: string; port: number }]> = [
      ['', { host: '127.0.0.1', port: 5060 }],
      ['bind = 0.0.0.0:5560\n', { host: '127.0.0.1', port: 5560 }],
      ['bind = [::]:5562\n', { host: '127.0.0.1', port: 5562 }],
      ['bind = 192.0.2.5\n', { host: '192.0.2.5', port: 5060 }],
      ['bind = 127.0.0.1:6000\n', { host: '127.0.0.1', port: 6000 }],
    ]
    for (const [bind, sip] of cases) t.same(websmsWiring([], [transport(bind)]).sip, sip, bind || 'the template')

    const globals = (text: string) => [doc(`[globals]\n${text}`, 'extensions_local.conf')]
    t.equal(websmsWiring(globals('WEBSMS_API_PORT = 58123\n'), []).apiPort, 58123)
    t.equal(websmsWiring(globals('WEBSMS_API_PORT =\n'), []).apiPort, DEFAULT_API_PORT, 'empty: the default')
    t.throws(
      () => websmsWiring(globals('WEBSMS_API_PORT = 99999\n'), []),
      /extensions_local\.conf \[globals\] WEBSMS_API_PORT must be a port number 1-65535, got `99999`/,
    )
    t.throws(
      () => websmsWiring([], [transport('bind = 1.2.3.4:x\n')]),
      /\[udp\] bind port must be a port number 1-65535, got `x`/,
    )
    t.equal(websmsWiring(globals('CONTRY_CODE = 46\n'), []).countryCode, '46')
  },
)
