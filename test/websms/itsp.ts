import t from 'tap'
import { BlockList } from 'node:net'
import { parseWebsmsConf, type Inbound } from '../../src/websms/config.ts'
import {
  checkCredentials,
  clientAddress,
  normalizeNumber,
  normalizeSender,
  outboundRequest,
  readWebhook,
  sanitizeText,
} from '../../src/websms/itsp.ts'

t.test('numbers become +E.164; short codes stay; anything else is no number', async (t) => {
  const cases: Array<[string, string | undefined, string | undefined]> = [
    ['+46701234567', undefined, '+46701234567'],
    ['46701234567', undefined, '+46701234567'],
    ['0046701234567', undefined, '+46701234567'],
    ['0701234567', '46', '+46701234567'],
    ['0701234567', undefined, '0701234567'],
    [' +1 (202) 555-0101 ', undefined, '+12025550101'],
    ['72400', undefined, '72400'],
    ['+4670123456789012', undefined, undefined],
    ['12', undefined, undefined],
    ['+0701234567', undefined, undefined],
    ['+4670\r\n1234567', undefined, undefined],
    ['+46701234567;user=phone', undefined, undefined],
    ['${EXTEN}', undefined, undefined],
    ['٤٦٧٠١٢٣٤٥٦٧', undefined, undefined],
  ]
  for (const [raw, cc, want] of cases) t.equal(normalizeNumber(raw, cc), want, JSON.stringify(raw))
  t.equal(normalizeSender('MyBank'), 'MyBank')
  t.equal(normalizeSender('My Bank AB'), 'My Bank AB')
  for (const bad of ['<sip:x@y>', 'Bank"', 'Bank\r\nVia: x', 'a'.repeat(21), '', '   ', 'Bänk'])
    t.equal(normalizeSender(bad), undefined, JSON.stringify(bad))
})

t.test('texts keep every script, emoji and line break; lose control characters and broken surrogates', async (t) => {
  t.equal(sanitizeText('Grüße 你好 😀👍🏽\r\nrad\ttvå'), 'Grüße 你好 😀👍🏽\r\nrad\ttvå')
  t.equal(sanitizeText('a\u0000b\u0007c\u001bd\u007fe'), 'abcde')
  t.equal(sanitizeText('lone \ud83d surrogate'), 'lone \ufffd surrogate')
})

t.test("the client's address: the peer's, or a trusted proxy's nearest untrusted forwarded hop", async (t) => {
  const proxies = new BlockList()
  proxies.addSubnet('10.0.0.0', 8)
  const cases: Array<[string, string | undefined, BlockList | undefined, string | undefined]> = [
    ['192.0.2.1', '203.0.113.9', undefined, '192.0.2.1'],
    ['192.0.2.1', '203.0.113.9', proxies, '192.0.2.1'],
    ['10.0.0.2', '203.0.113.9', proxies, '203.0.113.9'],
    ['::ffff:10.0.0.2', '203.0.113.9, 10.0.0.7', proxies, '203.0.113.9'],
    ['10.0.0.2', '198.51.100.1, 203.0.113.9', proxies, '203.0.113.9'],
    ['10.0.0.2', '10.0.0.5, 10.0.0.6', proxies, '10.0.0.5'],
    ['10.0.0.2', undefined, proxies, '10.0.0.2'],
    ['10.0.0.2', 'unknown', proxies, undefined],
    ['10.0.0.2', '203.0.113.9:4711', proxies, undefined],
    ['::ffff:127.0.0.1', undefined, undefined, '127.0.0.1'],
  ]
  for (const [peer, xff, trusted, want] of cases)
    t.equal(clientAddress(peer, xff, trusted), want, `${peer} ${xff ?? ''}`)
})

const config = (text: string) => [...parseWebsmsConf(text).itsps.values()][0]!

t.test('outbound requests: field names are data, never code', async (t) => {
  const itsp = config(
    '[x]\npreset = generic\nurl = https://api.example.net/send\nencoding = json\nto_field = __proto__.polluted\nfrom_field = constructor.prototype.x\nbody_field = a.b.c\nstatic = a.d=static\n',
  )
  const req = outboundRequest(itsp.outbound, { to: '+46701234567', from: '+12025550101', body: 'hi' })
  t.same(JSON.parse(req.body), {
    a: { d: 'static', b: { c: 'hi' } },
    ['__proto__']: { polluted: '+46701234567' },
    constructor: { prototype: { x: '+12025550101' } },
  })
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype untouched')
  const form = outboundRequest(config('[x]\npreset = 46elks\nusername = u:ser\npassword = p@ss:wörd\n').outbound, {
    to: '+46701234567',
    from: '+12025550101',
    body: 'a=b&c=d+e 😀',
  })
  t.equal(form.body, 'to=%2B46701234567&from=%2B12025550101&message=a%3Db%26c%3Dd%2Be+%F0%9F%98%80')
  t.equal(Buffer.from(form.headers.authorization!.slice(6), 'base64').toString('utf8'), 'u:ser:p@ss:wörd')
})

t.test('webhook fields are read as own data only', async (t) => {
  const inbound = config('[x]\npreset = telnyx\ntoken = t\ninbound_auth = none\nallow = 192.0.2.0/24\n')
    .inbound as Inbound
  const json = (o: unknown) => readWebhook(inbound, 'application/json', Buffer.from(JSON.stringify(o)))
  const good = {
    data: {
      event_type: 'message.received',
      payload: { to: [{ phone_number: '+12025550102' }], from: { phone_number: '+46701234567' }, text: 'hi' },
    },
  }
  t.same(json(good), { kind: 'text', text: { to: '+12025550102', from: '+46701234567', body: 'hi' } })
  t.match(
    json({
      data: {
        event_type: 'message.received',
        payload: { to: { length: 1, 0: { phone_number: '+12025550102' } }, from: { phone_number: '+4670' }, text: 'x' },
      },
    }),
    { kind: 'rejected', status: 400 },
    'an object posing as an array',
  )
  t.match(
    readWebhook(
      inbound,
      'application/json',
      Buffer.from('{"data":{"event_type":"message.received","payload":{"__proto__":{"text":"x"}}}}'),
    ),
    { kind: 'rejected', status: 400 },
  )
  t.match(
    json({ data: { ...good.data, payload: { ...good.data.payload, text: 42 } } }),
    { kind: 'text', text: { body: '42' } },
    'a number is read as text',
  )
  t.match(
    json({ data: { ...good.data, payload: { ...good.data.payload, text: { toString: 'x' } } } }),
    { kind: 'rejected', status: 400 },
    'an object is not',
  )
  t.same(json({ data: { event_type: 'message.finalized' } }), {
    kind: 'ignored',
    reason: 'data.event_type is "message.finalized", not "message.received"',
  })
})

t.test('credentials: each kind refuses what is not exactly it', async (t) => {
  const path = { kind: 'path', secret: 'abcdefghijklmnop' } as const
  t.equal(checkCredentials(path, {}, 'abcdefghijklmnop'), undefined)
  for (const wrong of [undefined, '', 'abcdefghijklmno', 'abcdefghijklmnopq', 'ABCDEFGHIJKLMNOP'])
    t.equal(checkCredentials(path, {}, wrong)?.status, 404, String(wrong))
  const header = { kind: 'header', name: 'x-webhook-secret', secret: 's3cret-s3cret-s3cret' } as const
  t.equal(checkCredentials(header, { 'x-webhook-secret': 's3cret-s3cret-s3cret' }, undefined), undefined)
  t.equal(checkCredentials(header, { 'x-webhook-secret': 's3cret-s3cret-s3cre' }, undefined)?.status, 401)
  t.equal(
    checkCredentials(header, { 'x-webhook-secret': 's3cret-s3cret-s3cret' }, 'extra')?.status,
    404,
    'a path secret where none is configured',
  )
  const basic = { kind: 'basic', username: 'itsp', password: 'pa:ss-pa:ss-pa:ss' } as const
  const auth = (s: string) => ({ authorization: `Basic ${Buffer.from(s).toString('base64')}` })
  t.equal(checkCredentials(basic, auth('itsp:pa:ss-pa:ss-pa:ss'), undefined), undefined, 'a colon in the password')
  for (const wrong of ['itsp:pa:ss-pa:ss-pa:s', 'ITSP:pa:ss-pa:ss-pa:ss', 'itsppa:ss-pa:ss-pa:ss', ''])
    t.equal(checkCredentials(basic, auth(wrong), undefined)?.status, 401, wrong)
  t.equal(checkCredentials(basic, { authorization: 'Bearer x' }, undefined)?.status, 401)
})
