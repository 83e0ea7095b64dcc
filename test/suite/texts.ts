// Texts (SIP MESSAGE) through the PrivateDial configuration on a real Asterisk, with sipp as
// phones, trunk and WebSMS service, and an HTTP server standing in for the WebSMS service's API.
import t, { type Test } from 'tap'
import { once } from 'node:events'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { setValue } from '../../src/config/conf.ts'
import { freePort, startTestPbx, USERS, type UserName } from '../helpers/asterisk.ts'
import { driver, finalResponses, findTools, requests, TRUNK_CALLER, type SippResult } from '../helpers/sipp.ts'

// Texts with what breaks naive handling: quotes, separators the dial plan parses (, ; = & |),
// dial plan syntax, percent signs, backslashes, non-ASCII and emoji.
const HOSTILE = [
  'plain',
  'say "hi", then; a=b & c | d',
  '${EXTEN} $[1+1] (unbalanced',
  '100% +1 %41 \\ back\\slash',
  'Grüße, Åsa! 你好 😀👍',
]

const tools = findTools()
if (typeof tools === 'string') t.plan(0, `skipped: ${tools}`)
else {
  // The WebSMS service's outbound API, as the dial plan sees it.
  const posted: { url: string | undefined; type: string | undefined; form: URLSearchParams }[] = []
  const websms = createServer((req, res) => {
    let body = ''
    req.setEncoding('utf8').on('data', (c: string) => (body += c))
    req.on('end', () => {
      posted.push({ url: req.url, type: req.headers['content-type'], form: new URLSearchParams(body) })
      res.end('queued')
    })
  })
  websms.listen(0, '127.0.0.1')
  await once(websms, 'listening')
  t.teardown(() => websms.close())

  // A trunk as the spec writes one, authenticating what it sends, and a user of it.
  const authTrunkPort = await freePort()
  const frank = { user: 'frank', password: 'frank-pw-8d3s', number: '+12025550106' }
  const pbx = await startTestPbx(tools.asterisk, {
    append: {
      'pjsip_endpoint.conf': [
        '[itsp:auth](w_trunk)',
        `remote_hosts = 127.0.0.1:${authTrunkPort}`,
        'sends_auth = yes',
        'outbound_auth/username = itsp-user',
        'outbound_auth/password = itsp-pw-5k2j',
        '[frank](w_term_io)',
        'endpoint/set_var = TRUNK_ENDPOINT=itsp:auth',
        `hint_exten = ${frank.number}`,
        `endpoint/callerid = Frank <${frank.number}>`,
        `inbound_auth/username = ${frank.user}`,
        `inbound_auth/password = ${frank.password}`,
        '',
      ].join('\n'),
    },
    edit: {
      'extensions_local.conf': (doc) =>
        setValue(doc, 'globals', 'WEBSMS_API_PORT', String((websms.address() as AddressInfo).port)),
    },
  })
  t.teardown(() => pbx.stop())
  const { run, start, phone, text } = driver(tools.sipp, pbx)
  const taken = (r: SippResult) => finalResponses(r, 'MESSAGE').at(-1)

  /** Phones of `user` that take `count` texts each. */
  const inboxes = (t: Test, user: UserName, phones: number, count: number) =>
    Promise.all(
      Array.from({ length: phones }, async () =>
        start({ scenario: 'uas-message.xml', port: await phone(t, user), calls: count }),
      ),
    )

  t.test("a text to a user reaches every registered phone, from the sender's number, unchanged", async (t) => {
    const bob = await inboxes(t, 'bob', 2, HOSTILE.length)
    const port = await phone(t, 'alice')
    for (const body of HOSTILE)
      t.equal(taken(await text('alice', USERS.bob.number, body, { port })), 202, `sent: ${body}`)
    for (const inbox of bob) {
      const got = requests(await inbox.done, 'MESSAGE')
      t.same(
        got.map((m) => m.body),
        HOSTILE,
        'every text, unchanged',
      )
      for (const m of got) t.match(m.header('From'), `"Alice Liddell" <sip:${USERS.alice.number}@`)
    }
  })

  t.test('a w_term_i user texts local users, from their number', async (t) => {
    const [bob] = await inboxes(t, 'bob', 1, 1)
    t.equal(taken(await text('carol', '02025550102', 'hi from carol', { port: await phone(t, 'carol') })), 202)
    const [m] = requests(await bob!.done, 'MESSAGE')
    t.equal(m?.body, 'hi from carol')
    t.match(m?.header('From'), `<sip:${USERS.carol.number}@`)
  })

  t.test("texts to other numbers leave through the sender's trunk, from the sender's number", async (t) => {
    const trunk = await start({ scenario: 'uas-message.xml', port: pbx.trunkPort, calls: 2 })
    const port = await phone(t, 'alice')
    t.equal(taken(await text('alice', '0046701234567', HOSTILE[1]!, { port })), 202)
    t.equal(taken(await text('alice', '+46701234567', HOSTILE[4]!, { port })), 202)
    const got = requests(await trunk.done, 'MESSAGE')
    t.same(
      got.map((m) => m.startLine.split(/[:@]/)[1]),
      ['+46701234567', '+46701234567'],
      'to +E.164',
    )
    t.same(
      got.map((m) => m.body),
      [HOSTILE[1], HOSTILE[4]],
    )
    // The sender's number, nothing appended: not the `:test` of the trunk's name itsp:test, which
    // Asterisk would keep in the From of a text sent through that endpoint (as a password).
    for (const m of got)
      t.match(m.header('From'), new RegExp(`^"Alice Liddell" <sip:\\${USERS.alice.number}@[^>:]+>;tag=`))
  })

  t.test('a text through a trunk that asks for credentials is sent with them, from the number', async (t) => {
    const itsp = await start({ scenario: 'uas-message-auth.xml', port: authTrunkPort })
    const r = await run({
      scenario: 'uac-message.xml',
      port: await freePort(),
      auth: frank,
      keys: { from: frank.user, to: '+46701234567', body: 'with credentials' },
    })
    t.equal(taken(r), 202, r.summary)
    const got = await itsp.done
    t.same(
      got.messages.flatMap((m) => (m.direction === 'sent' && m.status ? [m.status] : [])),
      [401, 200],
      `challenged, then taken with the right credentials\n${got.summary}`,
    )
    const [first, retry] = requests(got, 'MESSAGE')
    t.match(retry?.header('Authorization'), /^Digest .*username="itsp-user"/)
    for (const m of [first, retry])
      t.match(m?.header('From'), new RegExp(`^"Frank" <sip:\\${frank.number}@[^>:]+>;tag=`))
  })

  t.test('neither a w_term_i user nor the trunk can text out through the trunk', async (t) => {
    let from = pbx.log().length
    t.equal(
      taken(await text('carol', '+46701234567', 'from carol', { port: await phone(t, 'carol') })),
      202,
      'taken...',
    )
    await pbx.waitForLog(/Text to \+46701234567 dropped: no user has this number/, { from })
    from = pbx.log().length
    t.equal(taken(await text('trunk', '+46701234568', 'from the trunk')), 202, 'taken...')
    await pbx.waitForLog(/Text to \+46701234568 dropped: no user has this number/, { from })
    t.pass('...and dropped')
    // Texts are routed one at a time, in order: alice's is the first and only one the trunk gets.
    const trunk = await start({ scenario: 'uas-message.xml', port: pbx.trunkPort })
    t.equal(taken(await text('alice', '+46701234569', 'from alice', { port: await phone(t, 'alice') })), 202)
    t.same(
      requests(await trunk.done, 'MESSAGE').map((m) => m.body),
      ['from alice'],
    )
  })

  t.test('a "number" with more than digits goes nowhere', async (t) => {
    // A comma would end MessageSend's destination and start its From: a spoofed sender.
    const from = pbx.log().length
    t.equal(taken(await text('alice', '+46701234567,+19995550000', 'spoofed?')), 202, 'taken...')
    await pbx.waitForLog(/dropped a number that is not digits/, { from })
    // Texts are routed in order: alice's next text is the first and only one the trunk gets.
    const trunk = await start({ scenario: 'uas-message.xml', port: pbx.trunkPort })
    t.equal(taken(await text('alice', '+46701234567', 'plain')), 202)
    t.same(
      requests(await trunk.done, 'MESSAGE').map((m) => m.body),
      ['plain'],
    )
  })

  t.test("trunk texts to a user's number reach all the user's phones; others are dropped", async (t) => {
    const bob = await inboxes(t, 'bob', 2, 1)
    t.equal(taken(await text('trunk', '12025550102', HOSTILE[2]!)), 202)
    for (const inbox of bob) {
      const [m] = requests(await inbox.done, 'MESSAGE')
      t.equal(m?.body, HOSTILE[2])
      t.match(m?.header('From'), `<sip:${TRUNK_CALLER}@`, "the sender's number")
    }
    const from = pbx.log().length
    t.equal(taken(await text('trunk', '+12025550199', 'nobody')), 202, 'SIP takes a text before the dial plan sees it')
    await pbx.waitForLog(/Text to \+12025550199 dropped: no user has this number/, { from })
  })

  t.test('texts from the WebSMS service reach the user, decoded as the service marked them', async (t) => {
    const body = 'two\nlines, "quoted" & 😀'
    const encodings = [
      ['', body],
      ['X-Body-Encoding: base64', Buffer.from(body).toString('base64')],
      ['X-Body-Encoding: url', encodeURIComponent(body)],
    ] as const
    const [bob] = await inboxes(t, 'bob', 1, encodings.length)
    for (const [header, sent] of encodings) {
      const keys = { from: TRUNK_CALLER, to: USERS.bob.number, body: sent, ...(header ? { header } : {}) }
      const r = await run({ scenario: 'uac-message.xml', port: pbx.websmsPort, keys })
      t.equal(taken(r), 202, `${header || 'no encoding'}\n${r.summary}`)
    }
    const got = requests(await bob!.done, 'MESSAGE')
    t.same(
      got.map((m) => m.body),
      [body, body, body],
    )
    for (const m of got) t.match(m.header('From'), `<sip:${TRUNK_CALLER}@`)
  })

  t.test('a user with a WEBSMS_INDEX texts other numbers over the WebSMS service, local users over SIP', async (t) => {
    posted.length = 0
    const [bob] = await inboxes(t, 'bob', 1, 1)
    const port = await phone(t, 'erin')
    for (const body of HOSTILE) t.equal(taken(await text('erin', '0046701234567', body, { port })), 202)
    t.equal(taken(await text('erin', USERS.bob.number, 'over SIP', { port })), 202)
    // Texts are routed in order: once bob has this one, the others are through.
    t.equal(requests(await bob!.done, 'MESSAGE')[0]?.body, 'over SIP')
    t.same(
      posted.map((p) => p.url),
      HOSTILE.map(() => '/outbound'),
    )
    t.same(
      posted.map((p) => p.type),
      HOSTILE.map(() => 'application/x-www-form-urlencoded'),
    )
    t.same(
      posted.map((p) => Object.fromEntries(p.form)),
      HOSTILE.map((body) => ({ index: 'elks', to: '+46701234567', from: USERS.erin.number, body })),
    )
  })
}
