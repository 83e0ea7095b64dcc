// The WebSMS service over real HTTP: webhooks posted to it, an ITSP stand-in taking its posts, and,
// where there is one, a real Asterisk with sipp phones on the other side.
import t, { type Test } from 'tap'
import { readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { networkInterfaces } from 'node:os'
import { join } from 'node:path'
import { parseConf, printConf, setValue } from '../../src/config/conf.ts'
import { ConfigError } from '../../src/base/errors.ts'
import { memoryLogger } from '../../src/base/log.ts'
import { splitText } from '../../src/websms/sip-message.ts'
import { startWebsms, type Job, type WebsmsOptions } from '../../src/websms/service.ts'
import type { QueueItem } from '../../src/websms/queue.ts'
import { findAsterisk, freePort, startTestPbx, USERS, type UserName } from '../helpers/asterisk.ts'
import { finalResponses, findSipp, requests, runSipp, startSipp, type SippOptions } from '../helpers/sipp.ts'
import { signingKey, startItsp, telnyxHeaders, telnyxInbound, websmsConfDir } from '../helpers/websms-itsp.ts'

// What breaks naive handling: quotes, separators the dial plan parses, dial plan syntax, percent
// signs, what looks like SIP, non-ASCII, emoji with modifiers, line breaks.
const TEXTS = [
  'plain',
  'say "hi", then; a=b & c | d ${EXTEN} $[1+1] (unbalanced',
  '100% +1 %41 \\ back\\slash <sip:x@y>\r\nVia: SIP/2.0/UDP evil',
  'Grüße, Åsa! 你好 😀👍🏽 👨‍👩‍👧‍👦',
  'two\nlines\n\nand a blank one',
  'ends with a line break\n',
]

const SECRETS = {
  elksPassword: 'api-password-secret-1',
  telnyxToken: 'KEYsecret-token-2',
  genericKey: 'generic-api-key-3',
  basicPassword: 'basic-password-4567',
  pathSecret: 'path-secret-0123456789abcdef',
  headerSecret: 'header-secret-0123456789',
  queryKey: 'query-key-in-the-url-0123',
}
const key = signingKey()
const itsp = await startItsp()
t.teardown(() => itsp.close())
const logs: string[][] = []

const websmsConf = (itspUrl: string) => `
[elks]
preset = 46elks
url = ${itspUrl}/a1/sms
username = api-user
password = ${SECRETS.elksPassword}
inbound_auth = path
inbound_secret = ${SECRETS.pathSecret}

[telnyx]
preset = telnyx
url = ${itspUrl}/v2/messages
token = ${SECRETS.telnyxToken}
static = messaging_profile_id=prof-1
inbound_auth = ed25519
inbound_public_key = ${key.publicKey}

[generic]
preset = generic
url = ${itspUrl}/send?key=${SECRETS.queryKey}
encoding = json
auth = header
auth_header = X-Api-Key
token = ${SECRETS.genericKey}
to_field = msg.to
from_field = msg.from
body_field = msg.text
static = flash=no
number_format = digits
inbound_auth = basic
inbound_username = itsp
inbound_password = ${SECRETS.basicPassword}
inbound_to = To
inbound_from = From
inbound_body = Body
allow = 192.0.2.0/24
trusted_proxies = 127.0.0.1

[locked]
preset = generic
url = ${itspUrl}/send
to_field = to
from_field = from
body_field = text
inbound_auth = header
inbound_secret = ${SECRETS.headerSecret}
inbound_to = to
inbound_from = from
inbound_body = text
allow = 192.0.2.0/24
`

const fastRetry: WebsmsOptions['retry'] = {
  asterisk: { baseMs: 50, maxMs: 200 },
  itsp: { baseMs: 20, maxMs: 50, maxAgeMs: 1000 },
}

/** A service whose Asterisk is down: texts for phones stay queued, so the test can read them. */
async function service(t: Test, opts: { websms?: string } = {}) {
  const apiPort = await freePort()
  const confDir = await websmsConfDir({
    websms: opts.websms ?? websmsConf(itsp.url),
    apiPort,
    sipPort: await freePort(),
  })
  t.teardown(() => rm(confDir, { recursive: true, force: true }))
  const spoolDir = join(confDir, 'spool')
  const log = memoryLogger('websms')
  logs.push(log.lines)
  const w = await startWebsms({
    confDir,
    port: 0,
    host: '127.0.0.1',
    spoolDir,
    log,
    sipT1Ms: 50,
    sipTimeoutMs: 200,
    retry: fastRetry,
  })
  t.teardown(() => w.close())
  t.equal(w.apiPort, apiPort, 'the API port is the one extensions_local.conf names')
  return { w, log, spoolDir, confDir, hooks: `http://127.0.0.1:${w.publicPort}`, api: `http://127.0.0.1:${w.apiPort}` }
}

async function queued(spoolDir: string): Promise<Job[]> {
  const names = (await readdir(spoolDir)).filter((n) => n.endsWith('.json')).sort()
  return Promise.all(
    names.map(async (n) => (JSON.parse(await readFile(join(spoolDir, n), 'utf8')) as QueueItem<Job>).payload),
  )
}

async function until<T>(what: string, get: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  for (const deadline = Date.now() + timeoutMs; ; await new Promise((r) => setTimeout(r, 20))) {
    const v = await get()
    if (v !== undefined) return v
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
  }
}

async function post(
  url: string,
  body: string | Buffer | ReadableStream,
  headers: Record<string, string> = {},
  method = 'POST',
) {
  const res = await fetch(url, {
    method,
    headers,
    body: method === 'GET' ? undefined : body,
    duplex: 'half',
  } as RequestInit)
  return { status: res.status, text: await res.text() }
}

const form = (fields: Record<string, string>) => ({
  body: new URLSearchParams(fields).toString(),
  headers: { 'content-type': 'application/x-www-form-urlencoded' },
})
const basic = (user: string, pw: string) => `Basic ${Buffer.from(`${user}:${pw}`).toString('base64')}`
const elksHook = (to: string, from: string, message: string) =>
  form({
    direction: 'incoming',
    id: 'sf8425555e5d8db61dda7a7b3f1b91bdb',
    from,
    to,
    message,
    created: '2026-07-13T13:57:23.741000',
  })

t.test('webhooks of each ITSP are acknowledged with an empty 200 and queued for phones, text intact', async (t) => {
  const s = await service(t)
  const elks = `${s.hooks}/inbound/elks/${SECRETS.pathSecret}`
  for (const text of TEXTS) {
    const h = elksHook('+12025550102', '+46701234567', text)
    t.same(await post(elks, h.body, h.headers), { status: 200, text: '' }, `46elks: ${JSON.stringify(text)}`)
  }
  const body = telnyxInbound('+12025550102', '+18665550001', TEXTS[3]!)
  t.same(
    await post(`${s.hooks}/inbound/telnyx`, body, telnyxHeaders(key, body)),
    { status: 200, text: '' },
    'Telnyx, signed',
  )
  const report = telnyxInbound('+12025550102', '+18665550001', 'x', 'message.finalized')
  t.same(
    await post(`${s.hooks}/inbound/telnyx`, report, telnyxHeaders(key, report)),
    { status: 200, text: '' },
    'a Telnyx delivery report is acknowledged...',
  )
  const g = form({ To: '12025550102', From: '46701234567', Body: 'generic ☃' })
  t.equal(
    (
      await post(`${s.hooks}/inbound/generic`, g.body, {
        ...g.headers,
        authorization: basic('itsp', SECRETS.basicPassword),
        'x-forwarded-for': '198.51.100.1, 192.0.2.7',
      })
    ).status,
    200,
    'generic, basic auth, through a trusted proxy',
  )
  const jobs = await queued(s.spoolDir)
  t.same(
    jobs,
    [
      ...TEXTS.map((body) => ({ kind: 'deliver', to: '+12025550102', from: '+46701234567', body, index: 'elks' })),
      { kind: 'deliver', to: '+12025550102', from: '+18665550001', body: TEXTS[3], index: 'telnyx' },
      { kind: 'deliver', to: '+12025550102', from: '+46701234567', body: 'generic ☃', index: 'generic' },
    ],
    '...but not queued; numbers without + become +E.164',
  )
  t.match(
    s.log.lines.join('\n'),
    /INFO  websms: text from the ITSP queued for phones itsp=elks client=127\.0\.0\.1 to=\+12025550102 from=\+46701234567 bytes=5 parts=1/,
  )
})

t.test('senders and texts are normalised', async (t) => {
  const s = await service(t)
  const elks = `${s.hooks}/inbound/elks/${SECRETS.pathSecret}`
  const cases: Array<[string, string, string, string]> = [
    ['0046701234567', 'x', '+46701234567', 'x'],
    ['0701234567', 'national, with CONTRY_CODE', '+1701234567', 'national, with CONTRY_CODE'],
    ['MyBank', 'an alphanumeric sender', 'MyBank', 'an alphanumeric sender'],
    ['72400', 'a short code', '72400', 'a short code'],
    [
      '+46 70-123 45 67',
      'bell\u0007 NUL\u0000 ESC\u001b DEL\u007f tab\tkept',
      '+46701234567',
      'bell NUL ESC DEL tab\tkept',
    ],
    ['+46701234567', '', '+46701234567', '(a message without text)'],
    ['+46701234567', ' \u0000\n', '+46701234567', '(a message without text)'],
  ]
  for (const [from, text] of cases) {
    const h = elksHook('+12025550102', from, text)
    t.equal((await post(elks, h.body, h.headers)).status, 200, from)
  }
  t.same(
    (await queued(s.spoolDir)).map((j) => [j.from, j.body]),
    cases.map(([, , from, body]) => [from, body]),
  )
})

t.test('hostile and malformed webhooks are refused and queue nothing', async (t) => {
  const s = await service(t)
  const elks = `${s.hooks}/inbound/elks/${SECRETS.pathSecret}`
  const ok = elksHook('+12025550102', '+46701234567', 'hi')
  const signed = (body: string, at?: number) => ({ body, headers: telnyxHeaders(key, body, at) })
  const good = telnyxInbound('+12025550102', '+46701234567', 'hi')
  const g = form({ To: '12025550102', From: '46701234567', Body: 'x' })
  const gAuth = { ...g.headers, authorization: basic('itsp', SECRETS.basicPassword) }
  const big = form({ to: '+12025550102', from: '+46701234567', message: 'x'.repeat(64 * 1024) })
  const chunked = () =>
    new ReadableStream({
      start(c) {
        for (let i = 0; i < 70; i++) c.enqueue(new TextEncoder().encode('x'.repeat(1024)))
        c.close()
      },
    })
  const cases: Array<[string, string, string | ReadableStream, Record<string, string>, number, string?]> = [
    ['GET', elks, '', {}, 405],
    ['wrong path secret', `${s.hooks}/inbound/elks/${SECRETS.pathSecret.replace(/.$/, 'X')}`, ok.body, ok.headers, 404],
    ['no path secret', `${s.hooks}/inbound/elks`, ok.body, ok.headers, 404],
    [
      'a secret where none is asked',
      `${s.hooks}/inbound/telnyx/${SECRETS.pathSecret}`,
      good,
      telnyxHeaders(key, good),
      404,
    ],
    ['unknown ITSP', `${s.hooks}/inbound/nosuch`, ok.body, ok.headers, 404],
    [
      'the outbound API on the public port',
      `${s.hooks}/outbound`,
      form({ index: 'elks', to: '+46701234567', from: '+12025550102', body: 'x' }).body,
      ok.headers,
      404,
    ],
    ['unsigned', `${s.hooks}/inbound/telnyx`, good, { 'content-type': 'application/json' }, 401],
    ['signed by someone else', `${s.hooks}/inbound/telnyx`, good, telnyxHeaders(signingKey(), good), 401],
    [
      'body changed after signing',
      `${s.hooks}/inbound/telnyx`,
      good.replace('hi', 'ha'),
      telnyxHeaders(key, good),
      401,
    ],
    [
      'signed 10 minutes ago (a replay)',
      `${s.hooks}/inbound/telnyx`,
      good,
      telnyxHeaders(key, good, Math.floor(Date.now() / 1000) - 600),
      401,
    ],
    ['no basic auth', `${s.hooks}/inbound/generic`, g.body, { ...g.headers, 'x-forwarded-for': '192.0.2.7' }, 401],
    [
      'wrong password',
      `${s.hooks}/inbound/generic`,
      g.body,
      { ...g.headers, 'x-forwarded-for': '192.0.2.7', authorization: basic('itsp', 'guess-guess-guess') },
      401,
    ],
    ['a network not allowed (the proxy itself)', `${s.hooks}/inbound/generic`, g.body, gAuth, 403],
    [
      'a network not allowed, behind an allowed one',
      `${s.hooks}/inbound/generic`,
      g.body,
      { ...gAuth, 'x-forwarded-for': '192.0.2.7, 203.0.113.5' },
      403,
    ],
    [
      'a forwarded-for that is no address',
      `${s.hooks}/inbound/generic`,
      g.body,
      { ...gAuth, 'x-forwarded-for': '192.0.2.7, evil\u00e9' },
      400,
    ],
    [
      'forwarded-for from a peer that is no trusted proxy',
      `${s.hooks}/inbound/locked`,
      'to=%2B12025550102&from=1&text=x',
      {
        'content-type': 'application/x-www-form-urlencoded',
        'x-webhook-secret': SECRETS.headerSecret,
        'x-forwarded-for': '192.0.2.7',
      },
      403,
    ],
    ['over 64 KiB', elks, big.body, big.headers, 413],
    ['over 64 KiB, chunked', elks, chunked(), ok.headers, 413],
    ['text/plain', elks, ok.body, { 'content-type': 'text/plain' }, 415],
    ['no content type', elks, ok.body, {}, 415],
    ['Latin-1', elks, ok.body, { 'content-type': 'application/x-www-form-urlencoded; charset=iso-8859-1' }, 415],
    [
      'not JSON',
      `${s.hooks}/inbound/telnyx`,
      ...(Object.values(signed('{"data": ')) as [string, Record<string, string>]),
      400,
    ],
    [
      'JSON that is no object',
      `${s.hooks}/inbound/telnyx`,
      ...(Object.values(signed('"hello"')) as [string, Record<string, string>]),
      400,
    ],
    [
      'no recipient in the array',
      `${s.hooks}/inbound/telnyx`,
      ...(Object.values(signed(good.replace(/"to":\[[^\]]*\]/, '"to":[]'))) as [string, Record<string, string>]),
      400,
    ],
    ['a field missing', elks, 'to=%2B12025550102&from=%2B46701234567', ok.headers, 400],
    ['to is no number', elks, elksHook('abc', '+46701234567', 'x').body, ok.headers, 400],
    ['to is too long', elks, elksHook('+4670123456789012345', '+46701234567', 'x').body, ok.headers, 400],
    [
      'from with a CR LF header',
      elks,
      elksHook('+12025550102', '+4670\r\nVia: SIP/2.0/UDP evil', 'x').body,
      ok.headers,
      400,
    ],
    ['from with dial plan syntax', elks, elksHook('+12025550102', '${SHELL(rm -rf /)}', 'x').body, ok.headers, 400],
    ['from with a SIP URI', elks, elksHook('+12025550102', '<sip:a@b>', 'x').body, ok.headers, 400],
  ]
  for (const [what, url, body, headers, status] of cases) {
    const r = await post(url, body, headers, what === 'GET' ? 'GET' : 'POST')
    t.equal(r.status, status, what)
    t.notMatch(r.text, new RegExp(Object.values(SECRETS).join('|')), `${what}: no secret in the answer`)
  }
  t.same(await queued(s.spoolDir), [], 'nothing queued')
  t.match(
    s.log.lines.join('\n'),
    /WARN  websms: webhook refused: bad signature itsp=telnyx client=127\.0\.0\.1 status=401/,
  )
})

t.test("texts from phones are posted to the sender's ITSP as its API wants them", async (t) => {
  const s = await service(t)
  const before = itsp.posted.length
  const sent: Array<[string, string]> = [
    ['elks', TEXTS[3]!],
    ['telnyx', TEXTS[4]!],
    ['generic', TEXTS[1]!],
  ]
  for (const [index, body] of sent) {
    // As the dial plan's CURL sends it: every field URIENCODEd.
    const r = await post(
      `${s.api}/outbound`,
      `index=${index}&to=${encodeURIComponent('+46701234567')}&from=${encodeURIComponent('+12025550105')}&body=${encodeURIComponent(body)}`,
      { 'content-type': 'application/x-www-form-urlencoded' },
    )
    t.equal(r.status, 202, index)
  }
  const [elks, telnyx, generic] = (await itsp.waitFor(before + 3)).slice(before)
  t.equal(elks?.url, '/a1/sms')
  t.equal(elks?.headers.authorization, basic('api-user', SECRETS.elksPassword))
  t.equal(elks?.headers['content-type'], 'application/x-www-form-urlencoded')
  t.same(Object.fromEntries(new URLSearchParams(elks?.body)), {
    to: '+46701234567',
    from: '+12025550105',
    message: TEXTS[3],
  })
  t.equal(telnyx?.url, '/v2/messages')
  t.equal(telnyx?.headers.authorization, `Bearer ${SECRETS.telnyxToken}`)
  t.same(JSON.parse(telnyx?.body ?? ''), {
    messaging_profile_id: 'prof-1',
    to: '+46701234567',
    from: '+12025550105',
    text: TEXTS[4],
  })
  t.equal(generic?.url, `/send?key=${SECRETS.queryKey}`)
  t.equal(generic?.headers['x-api-key'], SECRETS.genericKey)
  t.same(
    JSON.parse(generic?.body ?? ''),
    { flash: 'no', msg: { to: '46701234567', from: '12025550105', text: TEXTS[1] } },
    'digits, nested fields, static fields',
  )
  await until('the queue to empty', async () => (s.w.queued() === 0 ? true : undefined))
  t.match(
    s.log.lines.join('\n'),
    /INFO  websms: text sent to the ITSP itsp=elks to=\+46701234567 from=\+12025550105 status=200/,
  )
})

t.test('a text the ITSP refuses comes back to the sender; one it could not take yet is retried', async (t) => {
  const s = await service(t)
  const before = itsp.posted.length
  const out = (to: string, body: string) =>
    post(
      `${s.api}/outbound`,
      `index=elks&to=${encodeURIComponent(to)}&from=%2B12025550105&body=${encodeURIComponent(body)}`,
      { 'content-type': 'application/x-www-form-urlencoded' },
    )
  itsp.answers.push(503, 200)
  t.equal((await out('+46701234567', 'retried')).status, 202)
  await itsp.waitFor(before + 2)
  itsp.answers.push(400)
  t.equal((await out('+46701234568', 'refused 😀')).status, 202)
  const notice = await until('the notice', async () => (await queued(s.spoolDir)).find((j) => j.kind === 'deliver'))
  t.same(
    { ...notice, body: undefined },
    { kind: 'deliver', to: '+12025550105', from: '+46701234568', body: undefined },
    'to the sender, from the number texted, so it shows in that conversation',
  )
  t.match(
    notice.body,
    /^⚠ Not delivered to \+46701234568: the ITSP answered 400: \{"errors":\[\{"title":"status 400 from the stand-in"\}\]\}\. Your text: “refused 😀”$/,
  )
  t.equal((await queued(s.spoolDir)).length, 1, 'the retried text caused no notice')
  t.match(
    s.log.lines.join('\n'),
    /ERROR websms: text not sent; telling the sender itsp=elks to=\+46701234568 from=\+12025550105 reason="the ITSP answered 400/,
  )
})

t.test('an ITSP that stays unreachable: the sender is told once the retries run out', async (t) => {
  const dead = await freePort()
  const s = await service(t, {
    websms: `[down]\npreset = 46elks\nurl = http://127.0.0.1:${dead}/a1/sms\nusername = u\npassword = p\n`,
  })
  t.equal(
    (
      await post(`${s.api}/outbound`, 'index=down&to=%2B46701234567&from=%2B12025550105&body=hello', {
        'content-type': 'application/x-www-form-urlencoded',
      })
    ).status,
    202,
  )
  const notice = await until('the notice', async () => (await queued(s.spoolDir)).find((j) => j.kind === 'deliver'))
  t.match(
    notice.body,
    /^⚠ Not delivered to \+46701234567: 127\.0\.0\.1:\d+ unreachable: ECONNREFUSED; gave up after \d+ attempts in \d+ s\. Your text: “hello”$/,
  )
})

t.test(
  'the outbound API refuses what the dial plan would never send; the sender hears of texts it cannot route',
  async (t) => {
    const s = await service(t)
    const f = { 'content-type': 'application/x-www-form-urlencoded' }
    const cases: Array<[string, string, string, Record<string, string>, number, string?]> = [
      ['GET', '/outbound', '', {}, 405],
      ['another path', '/inbound/elks', 'x=1', f, 404],
      ['JSON', '/outbound', '{"index":"elks"}', { 'content-type': 'application/json' }, 415],
      ['a field missing', '/outbound', 'index=elks&to=%2B46701234567&from=%2B12025550105', f, 400],
      ['from is no number', '/outbound', 'index=elks&to=%2B46701234567&from=alice&body=x', f, 400],
      ['from with CR LF', '/outbound', 'index=elks&to=%2B46701234567&from=%2B1202%0D%0AVia%3A%20x&body=x', f, 400],
      ['empty text', '/outbound', 'index=elks&to=%2B46701234567&from=%2B12025550105&body=%20%0A', f, 400],
      [
        'over 64 KiB',
        '/outbound',
        `index=elks&to=%2B46701234567&from=%2B12025550105&body=${'x'.repeat(65 * 1024)}`,
        f,
        413,
      ],
      [
        'an ITSP websms.conf does not have',
        '/outbound',
        'index=nosuch&to=%2B46701234567&from=%2B12025550105&body=x',
        f,
        404,
        'WebSMS has no ITSP named "nosuch"',
      ],
      [
        'to is no number',
        '/outbound',
        'index=elks&to=%24%7BEXTEN%7D&from=%2B12025550105&body=x',
        f,
        400,
        '"${EXTEN}" is not a phone number',
      ],
    ]
    for (const [what, path, body, headers, status] of cases)
      t.equal((await post(`${s.api}${path}`, body, headers, what === 'GET' ? 'GET' : 'POST')).status, status, what)
    const notices = (await queued(s.spoolDir)).filter((j) => j.kind === 'deliver')
    t.same(
      notices.map((n) => [n.to, n.from]),
      [
        ['+12025550105', '+46701234567'],
        ['+12025550105', 'WebSMS'],
      ],
      'from the number texted, or WebSMS when that is no number',
    )
    cases.filter((c) => c[5]).forEach((c, i) => t.match(notices[i]?.body, c[5]!, `the sender is told: ${c[0]}`))
  },
)

const others = Object.values(networkInterfaces())
  .flat()
  .filter((i) => i && i.family === 'IPv4' && !i.internal)
t.test(
  'the API listens on loopback only',
  { skip: others.length ? false : 'no non-loopback IPv4 address on this host to try' },
  async (t) => {
    const s = await service(t)
    for (const i of others)
      await t.rejects(
        fetch(`http://${i!.address}:${s.w.apiPort}/outbound`, { method: 'POST' }),
        /fetch failed/,
        `not on ${i!.address}`,
      )
  },
)

t.test('reload takes a changed websms.conf; a broken one leaves the running config', async (t) => {
  const s = await service(t, { websms: '[late]\npreset = 46elks\nusername = u\npassword = p\n' })
  const hook = elksHook('+12025550102', '+46701234567', 'hi')
  const late = `${s.hooks}/inbound/late/${SECRETS.pathSecret}`
  t.equal((await post(late, hook.body, hook.headers)).status, 404, 'no webhooks before')
  await writeFile(
    join(s.confDir, 'websms.conf'),
    `[late]\npreset = 46elks\nusername = u\npassword = p\ninbound_auth = path\ninbound_secret = ${SECRETS.pathSecret}\n`,
  )
  await s.w.reload()
  t.equal((await post(late, hook.body, hook.headers)).status, 200, 'webhooks after')
  await writeFile(join(s.confDir, 'websms.conf'), '[late]\npreset = nokia\n')
  await t.rejects(s.w.reload(), ConfigError)
  await t.rejects(s.w.reload(), /websms\.conf:2: \[late\] preset must be one of 46elks, telnyx, generic, got `nokia`/)
  t.equal((await post(late, hook.body, hook.headers)).status, 200, 'still served by the old config')
  const apiPort = await freePort()
  const local = join(s.confDir, 'extensions_local.conf')
  const doc = parseConf(await readFile(local, 'utf8'))
  setValue(doc, 'globals', 'WEBSMS_API_PORT', String(apiPort))
  await writeFile(local, printConf(doc))
  await writeFile(join(s.confDir, 'websms.conf'), '[late]\npreset = 46elks\nusername = u\npassword = p\n')
  await s.w.reload()
  t.equal(s.w.apiPort, apiPort, 'a new API port is listened on')
  t.equal(
    (
      await post(`http://127.0.0.1:${apiPort}/outbound`, 'index=late', {
        'content-type': 'application/x-www-form-urlencoded',
      })
    ).status,
    400,
  )
})

t.test('closing cuts short a delivery in flight; the text stays queued for the next start', async (t) => {
  const apiPort = await freePort()
  const confDir = await websmsConfDir({ websms: websmsConf(itsp.url), apiPort, sipPort: await freePort() })
  t.teardown(() => rm(confDir, { recursive: true, force: true }))
  const spoolDir = join(confDir, 'spool')
  // RFC 3261 timers: an attempt on an Asterisk that is down would last 32 s.
  const w = await startWebsms({ confDir, port: 0, host: '127.0.0.1', spoolDir, log: memoryLogger('websms') })
  const h = elksHook('+12025550102', '+46701234567', 'in flight')
  t.equal(
    (await post(`http://127.0.0.1:${w.publicPort}/inbound/elks/${SECRETS.pathSecret}`, h.body, h.headers)).status,
    200,
  )
  await w.close()
  const [name] = (await readdir(spoolDir)).filter((f) => f.endsWith('.json'))
  const item = JSON.parse(await readFile(join(spoolDir, name!), 'utf8')) as QueueItem<Job>
  t.match(item, { attempts: 1, lastError: 'SIP client closed', payload: { body: 'in flight' } })
})

t.test('start-up problems name what to fix', async (t) => {
  const apiPort = await freePort()
  const confDir = await websmsConfDir({ websms: '[x]\npreset = telnyx\n', apiPort, sipPort: 5060 })
  t.teardown(() => rm(confDir, { recursive: true, force: true }))
  const opts = { confDir, port: 0, host: '127.0.0.1', spoolDir: join(confDir, 'spool'), log: memoryLogger('websms') }
  await t.rejects(startWebsms(opts), /websms\.conf:1: \[x\] needs token \(auth = bearer\)/)
  await writeFile(join(confDir, 'websms.conf'), '')
  await t.rejects(
    startWebsms({ ...opts, port: apiPort }),
    /WEBSMS_PORT and extensions_local\.conf \[globals\] WEBSMS_API_PORT are both \d+/,
  )
  const w = await startWebsms(opts)
  t.teardown(() => w.close())
  await t.rejects(
    startWebsms({ ...opts, spoolDir: join(confDir, 'spool2') }),
    /listening for the dial plan on 127\.0\.0\.1:\d+ \(WEBSMS_API_PORT\): listen EADDRINUSE/,
  )
})

const asterisk = findAsterisk()
const sipp = findSipp()
const noPbx = typeof asterisk === 'string' ? asterisk : typeof sipp === 'string' ? sipp : undefined
t.test('with a real Asterisk and sipp phones', { skip: noPbx ?? false }, async (t) => {
  if (typeof asterisk === 'string' || typeof sipp === 'string') return
  const apiPort = await freePort()
  const pbx = await startTestPbx(asterisk, {
    edit: {
      // WEBSMS_PORT is the name the dial plan reads today; WEBSMS_API_PORT the one it will read.
      'extensions_local.conf': (doc) => {
        setValue(doc, 'globals', 'WEBSMS_PORT', String(apiPort))
        setValue(doc, 'globals', 'WEBSMS_API_PORT', String(apiPort))
      },
    },
    append: { 'websms.conf': websmsConf(itsp.url) },
  })
  t.teardown(() => pbx.stop())
  const confDir = join(pbx.dir, 'etc')
  const spoolDir = join(pbx.dir, 'websms-spool')
  const run = (opts: Omit<SippOptions, 'target'>) => runSipp(sipp.bin, { ...opts, target: pbx.target })
  const start = (opts: Omit<SippOptions, 'target'>) => startSipp(sipp.bin, { ...opts, target: pbx.target })
  const auth = (user: UserName) => ({ user, password: USERS[user].password })
  const phone = async (t: Test, user: UserName) => {
    const port = await freePort()
    const r = await run({ scenario: 'uac-register.xml', port, auth: auth(user) })
    t.equal(finalResponses(r, 'REGISTER').at(-1), 200, `${user}'s phone on ${port} registers\n${r.summary}`)
    t.teardown(() => run({ scenario: 'uac-register.xml', port, auth: auth(user), keys: { expires: '0' } }))
    return port
  }
  const inbox = async (t: Test, user: UserName, count: number) =>
    start({ scenario: 'uas-message.xml', port: await phone(t, user), calls: count })
  const startService = async (t: Test, opts: Partial<WebsmsOptions> = {}) => {
    const log = memoryLogger('websms')
    logs.push(log.lines)
    const w = await startWebsms({
      confDir,
      port: 0,
      host: '127.0.0.1',
      spoolDir,
      log,
      sipSourcePort: pbx.websmsPort,
      retry: fastRetry,
      ...opts,
    })
    t.teardown(() => w.close())
    return { w, log, hooks: `http://127.0.0.1:${w.publicPort}` }
  }

  t.test("an ITSP's text reaches every registered phone of the user, from the sender, unchanged", async (t) => {
    const s = await startService(t)
    const long = `${'Långt meddelande med emoji 😀👍🏽. '.repeat(40)}slut`
    const parts = splitText(long)
    t.ok(parts.length > 1, `a long text goes in ${parts.length} parts`)
    // One grapheme of 1200 bytes: cut between code points, it must not hold up the queue.
    const zalgo = `Z${'\u0301\u0316\u0337'.repeat(200)}algo`
    const expected = [...TEXTS, ...parts, ...splitText(zalgo)]
    const phones = [await inbox(t, 'bob', expected.length), await inbox(t, 'bob', expected.length)]
    const elks = `${s.hooks}/inbound/elks/${SECRETS.pathSecret}`
    for (const text of [...TEXTS, long, zalgo]) {
      const h = elksHook('+12025550102', '+46701234567', text)
      t.equal((await post(elks, h.body, h.headers)).status, 200)
    }
    for (const p of phones) {
      const got = await p.done
      t.equal(got.code, 0, got.summary)
      const messages = requests(got, 'MESSAGE')
      t.same(
        messages.map((m) => m.body),
        expected,
        'every text, in order, unchanged',
      )
      for (const m of messages) t.match(m.header('From'), /^<sip:\+46701234567@/, "the sender's number")
      t.notOk(
        messages.some((m) => m.header('X-Body-Encoding')),
        'phones get the text itself',
      )
    }
  })

  t.test('an alphanumeric sender is shown by name; a Telnyx text arrives the same way', async (t) => {
    const s = await startService(t)
    const p = await inbox(t, 'alice', 2)
    const h = elksHook('+12025550101', 'MyBank', 'Your code is 1234')
    t.equal((await post(`${s.hooks}/inbound/elks/${SECRETS.pathSecret}`, h.body, h.headers)).status, 200)
    const body = telnyxInbound('+12025550101', '+18665550001', 'from Telnyx ✓')
    t.equal((await post(`${s.hooks}/inbound/telnyx`, body, telnyxHeaders(key, body))).status, 200)
    const [bank, telnyx] = requests(await p.done, 'MESSAGE')
    t.match(bank?.header('From'), /^"MyBank" <sip:MyBank@/)
    t.equal(bank?.body, 'Your code is 1234')
    t.match(telnyx?.header('From'), /^<sip:\+18665550001@/)
    t.equal(telnyx?.body, 'from Telnyx ✓')
  })

  t.test("a user's text to another number goes out over the user's ITSP; a refusal comes back as a text", async (t) => {
    const s = await startService(t)
    const erin = await phone(t, 'erin')
    const notices = await start({ scenario: 'uas-message.xml', port: erin })
    const before = itsp.posted.length
    const body = TEXTS[3]!
    const r = await run({
      scenario: 'uac-message.xml',
      port: await freePort(),
      auth: auth('erin'),
      keys: { from: 'erin', to: '+46701234567', body },
    })
    t.equal(finalResponses(r, 'MESSAGE').at(-1), 202, r.summary)
    const [posted] = (await itsp.waitFor(before + 1)).slice(before)
    t.equal(posted?.url, '/a1/sms', "erin's WEBSMS_INDEX is elks")
    t.equal(posted?.headers.authorization, basic('api-user', SECRETS.elksPassword))
    t.same(Object.fromEntries(new URLSearchParams(posted?.body)), {
      to: '+46701234567',
      from: USERS.erin.number,
      message: body,
    })
    itsp.answers.push(400)
    const r2 = await run({
      scenario: 'uac-message.xml',
      port: await freePort(),
      auth: auth('erin'),
      keys: { from: 'erin', to: '+46701234568', body: 'this one fails' },
    })
    t.equal(finalResponses(r2, 'MESSAGE').at(-1), 202)
    const got = await notices.done
    const [notice] = requests(got, 'MESSAGE')
    t.match(notice?.header('From'), /^<sip:\+46701234568@/, 'from the number texted')
    t.match(notice?.body, /^⚠ Not delivered to \+46701234568: the ITSP answered 400.*Your text: “this one fails”$/)
    t.match(
      s.log.lines.join('\n'),
      /text from a phone queued for the ITSP itsp=elks to=\+46701234568 from=\+12025550105/,
    )
  })

  t.test('a text that came while Asterisk was down is kept on disk and delivered after a restart', async (t) => {
    // The service first runs against a config whose Asterisk is not there...
    const downDir = await websmsConfDir({
      websms: websmsConf(itsp.url),
      apiPort: await freePort(),
      sipPort: await freePort(),
    })
    t.teardown(() => rm(downDir, { recursive: true, force: true }))
    const down = await startWebsms({
      confDir: downDir,
      port: 0,
      host: '127.0.0.1',
      spoolDir,
      log: memoryLogger('websms'),
      sipT1Ms: 50,
      sipTimeoutMs: 200,
      retry: fastRetry,
    })
    const h = elksHook('+12025550102', '+46701234567', 'kept while Asterisk was down 💾')
    t.equal(
      (await post(`http://127.0.0.1:${down.publicPort}/inbound/elks/${SECRETS.pathSecret}`, h.body, h.headers)).status,
      200,
    )
    await down.close()
    t.equal((await readdir(spoolDir)).filter((f) => f.endsWith('.json')).length, 1, 'on disk')
    // ...then starts again, with Asterisk up.
    const bob = await inbox(t, 'bob', 1)
    const s = await startService(t)
    const [m] = requests(await bob.done, 'MESSAGE')
    t.equal(m?.body, 'kept while Asterisk was down 💾')
    t.match(s.log.lines.join('\n'), /resuming 1 queued text\(s\)/)
    await until('the spool to empty', async () =>
      (await readdir(spoolDir)).some((f) => f.endsWith('.json')) ? undefined : true,
    )
  })

  t.test('Asterisk coming up while a text waits: delivered without a restart', async (t) => {
    // Asterisk listens on a port the service is told of only in its own copy of the config.
    const sipPort = await freePort()
    const dir = await websmsConfDir({ websms: websmsConf(itsp.url), apiPort: await freePort(), sipPort })
    t.teardown(() => rm(dir, { recursive: true, force: true }))
    const log = memoryLogger('websms')
    logs.push(log.lines)
    const w = await startWebsms({
      confDir: dir,
      port: 0,
      host: '127.0.0.1',
      spoolDir: join(dir, 'spool'),
      log,
      sipT1Ms: 50,
      sipTimeoutMs: 300,
      retry: fastRetry,
    })
    t.teardown(() => w.close())
    const h = elksHook('+12025550104', '+46701234567', 'waited for Asterisk')
    t.equal(
      (await post(`http://127.0.0.1:${w.publicPort}/inbound/elks/${SECRETS.pathSecret}`, h.body, h.headers)).status,
      200,
    )
    await until('a failed attempt', async () =>
      log.lines.some((l) => /delivery failed; retrying/.test(l)) ? true : undefined,
    )
    const second = await startTestPbx(asterisk, {
      edit: {
        'pjsip_transport.conf': (doc) => setValue(doc, 't_wan', 'bind', `127.0.0.1:${sipPort}`),
        'pjsip.conf': (doc) => setValue(doc, 'websms', 'match', '127.0.0.1'),
      },
    })
    t.teardown(() => second.stop())
    w.flush()
    await second.waitForLog(/Text for PJSIP\/dave not delivered: no phone is registered/)
    t.pass('Asterisk took it into the dial plan (dave never registers a phone, so there it ends)')
  })
})

t.test('no secret from websms.conf ever reached a log line', async (t) => {
  const all = logs.flat().join('\n')
  t.ok(all.length > 0)
  for (const [name, secret] of Object.entries(SECRETS)) t.notOk(all.includes(secret), name)
})
