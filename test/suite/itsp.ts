// Calls and texts from ITSPs the way real ones send them, through the PrivateDial configuration on
// a real Asterisk, with sipp as the ITSP (the IP-identified trunk itsp:test) and as phones.
import t, { type Test } from 'tap'
import { freePort, startTestPbx, USERS } from '../helpers/asterisk.ts'
import {
  driver,
  dtmf,
  finalResponses,
  findTools,
  requests,
  rtpPcap,
  silence,
  type SippResult,
} from '../helpers/sipp.ts'

const tools = findTools()
if (typeof tools === 'string') t.plan(0, `skipped: ${tools}`)
else {
  // Trunks that want the caller's number in other forms, each with a user who calls through it.
  const formats = { digits: await freePort(), national: await freePort() }
  const formatUser = (name: string, number: string, trunk: string) =>
    `[${name}](w_term_io)\nendpoint/callerid = ${name} <${number}>\nendpoint/set_var = TRUNK_ENDPOINT=${trunk}\n` +
    `inbound_auth/username = ${name}\ninbound_auth/password = ${name}-pw-5t6y\n`
  const pbx = await startTestPbx(tools.asterisk, {
    append: {
      'pjsip_endpoint.conf': Object.entries(formats)
        .map(
          ([format, port], i) =>
            `[itsp:${format}](w_trunk)\nremote_hosts = 127.0.0.1:${port}\nendpoint/set_var = CALLERID_FORMAT=${format}\n` +
            formatUser(`user-${format}`, `+1202555020${i}`, `itsp:${format}`),
        )
        .join('\n')
        .concat(
          // ITSPs whose calls come from several hosts, or networks.
          // identify/match replaces the addresses the wizard takes from remote_hosts: it lists them all.
          '\n[itsp:hosts](w_trunk)\nremote_hosts = 127.0.1.1, 127.0.1.2\n' +
            '\n[itsp:networks](w_trunk)\nremote_hosts = 127.0.2.1\nidentify/match = 127.0.2.1, 127.0.3.0/24\n',
        ),
    },
  })
  t.teardown(() => pbx.stop())
  const { run, start, auth, phone, call, text } = driver(tools.sipp, pbx)
  const answered = (r: SippResult) => finalResponses(r, 'INVITE').at(-1)
  /** Each CALLERID_FORMAT: its trunk's port, a user of that trunk, and the number the ITSP must see. */
  const presentations = [
    ['e164 (the default)', pbx.trunkPort, 'alice', USERS.alice.password, USERS.alice.number],
    ['digits', formats.digits, 'user-digits', 'user-digits-pw-5t6y', '12025550200'],
    ['national', formats.national, 'user-national', 'user-national-pw-5t6y', '02025550201'],
  ] as const
  const taken = (r: SippResult) => finalResponses(r, 'MESSAGE').at(-1)
  const at = (number: string) => `<sip:${number}@${pbx.target}>`
  const bob = USERS.bob.number

  /** Trunk calls with these keys, each answered by bob's phone; bob's phone's INVITEs. */
  const callsToBob = async (t: Test, cases: (readonly [string, Record<string, string>])[]) => {
    const phone = await start({ scenario: 'uas-answer.xml', port: await phoneOf(t), calls: cases.length })
    for (const [what, keys] of cases) {
      const r = await call('trunk', keys.to ?? '', { keys })
      t.equal(answered(r), 200, `${what} reaches bob\n${r.summary}`)
    }
    const got = await phone.done
    t.equal(got.code, 0, got.summary)
    return requests(got, 'INVITE')
  }
  const phoneOf = (t: Test) => phone(t, 'bob')

  t.test("calls sent to the trunk's registered Contact reach the user named in the headers", async (t) => {
    await callsToBob(t, [
      ['Contact user s, the number in To', { to: 's', to_uri: at('02025550102') }],
      ['s, in P-Called-Party-ID', { to: 's', to_uri: at('s'), header: `P-Called-Party-ID: ${at(bob)}` }],
      ['s, in Diversion', { to: 's', to_uri: at('s'), header: `Diversion: ${at(bob)};reason=unconditional` }],
      ['an account number as contact_user', { to: '4681234567', to_uri: at(bob) }],
      ['a name as contact_user', { to: 'mydoe', to_uri: `"Bob" <tel:+1-202-555-0102>` }],
    ])
  })

  t.test('a call to the Contact for any other number is refused, and never leaves through a trunk', async (t) => {
    // Were it routed out, the INVITE would come back to this very sipp (it is the trunk) and fail
    // its scenario.
    for (const [what, keys] of [
      ['no user has the number', { to: 's', to_uri: at('+12025550199') }],
      ['a number abroad', { to: 's', to_uri: at('+46701234567') }],
      ['a number abroad, by contact_user', { to: '4681234567', to_uri: at('0046701234567') }],
      ['no number at all', { to: 's', to_uri: at('s') }],
      ['more than digits', { to: 's', to_uri: at('+1,PJSIP/bob') }],
    ] as const) {
      const r = await call('trunk', keys.to, { keys })
      t.equal(r.code, 0, r.summary)
      t.same(finalResponses(r, 'INVITE'), [404], `${what}\n${r.summary}`)
    }
  })

  t.test("texts sent to the trunk's registered Contact reach the user named in the headers", async (t) => {
    const inbox = await start({ scenario: 'uas-message.xml', port: await phone(t, 'bob'), calls: 2 })
    t.equal(taken(await text('trunk', 's', 'to s', { keys: { to_uri: at(bob) } })), 202)
    t.equal(taken(await text('trunk', '4681234567', 'to contact_user', { keys: { to_uri: at('0012025550102') } })), 202)
    t.same(
      requests(await inbox.done, 'MESSAGE').map((m) => m.body),
      ['to s', 'to contact_user'],
    )
    const from = pbx.log().length
    t.equal(taken(await text('trunk', 's', 'nobody', { keys: { to_uri: at('+12025550199') } })), 202)
    await pbx.waitForLog(/Text to \+12025550199 dropped: no user has this number/, { from })
  })

  t.test('every number format ITSPs use reaches the user', async (t) => {
    await callsToBob(t, [
      ['+E.164', { to: bob }],
      ['E.164 digits', { to: '12025550102' }],
      ['national 0 + number', { to: '02025550102' }],
      ['00 + international', { to: '0012025550102' }],
      ['a tel: URI', { to: bob, ruri: `tel:${bob}`, to_uri: `<tel:${bob}>` }],
      [
        ';user=phone',
        { to: bob, ruri: `sip:${bob}@${pbx.target};user=phone`, to_uri: `<sip:${bob}@${pbx.target};user=phone>` },
      ],
    ])
  })

  t.test("the caller's number reaches the phone as +E.164 where it can be told", async (t) => {
    const cases = [
      ['+46705550199', '+46705550199'],
      ['46705550199', '+46705550199'],
      ['0046705550199', '+46705550199'],
      ['0705550199', '+1705550199'],
      ['anonymous', 'anonymous'],
    ] as const
    const invites = await callsToBob(
      t,
      cases.map(([from]) => [`from ${from}`, { to: bob, from }] as const),
    )
    t.same(
      invites.map((i) => /<sip:([^@]+)@/.exec(i.header('From') ?? '')?.[1]),
      cases.map((c) => c[1]),
    )
    const inbox = await start({ scenario: 'uas-message.xml', port: await phone(t, 'bob') })
    t.equal(taken(await text('trunk', bob, 'call me back', { keys: { from: '0705550199' } })), 202)
    t.match(requests(await inbox.done, 'MESSAGE')[0]?.header('From'), '<sip:+1705550199@', 'on texts too')
  })

  t.test("the ITSP sees the caller's number in the form the trunk asks for", async (t) => {
    for (const [format, port, from, password, want] of presentations) {
      const trunk = await start({ scenario: 'uas-answer.xml', port })
      const keys = { from, to: '0046701234567' }
      const r = await run({ scenario: 'uac-call.xml', port: await freePort(), auth: { user: from, password }, keys })
      t.equal(answered(r), 200, r.summary)
      const [invite] = requests(await trunk.done, 'INVITE')
      t.match(invite?.startLine, 'INVITE sip:+46701234567@', format)
      t.match(invite?.header('From'), `<sip:${want}@`, format)
    }
  })

  t.test("texts to the ITSP carry the sender's number in the form the trunk asks for, as calls do", async (t) => {
    for (const [format, port, from, password, want] of presentations) {
      const trunk = await start({ scenario: 'uas-message.xml', port })
      const keys = { from, to: '0046701234567', body: `in ${format}` }
      const r = await run({ scenario: 'uac-message.xml', port: await freePort(), auth: { user: from, password }, keys })
      t.equal(taken(r), 202, r.summary)
      const [message] = requests(await trunk.done, 'MESSAGE')
      t.match(message?.header('From'), new RegExp(`<sip:${want.replace('+', '\\+')}@`), format)
    }
  })

  t.test("#31# before a number withholds the caller's number from the ITSP", async (t) => {
    const trunk = await start({ scenario: 'uas-answer.xml', port: pbx.trunkPort })
    const dialled = '%2331%230046701234567'
    const keys = { to: dialled, ruri: `sip:${dialled}@${pbx.target}` }
    t.equal(answered(await call('alice', dialled, { keys })), 200)
    const [invite] = requests(await trunk.done, 'INVITE')
    t.match(invite?.startLine, 'INVITE sip:+46701234567@', 'the call goes to the number after #31#')
    t.match(invite?.header('From'), /anonymous/i)
    t.notMatch(
      invite?.headers.map((h) => `${h.name}: ${h.value}`).join('\n'),
      USERS.alice.number.slice(1),
      "alice's number is nowhere in the INVITE",
    )
  })

  t.test('an ITSP that calls from several hosts and networks is recognised from each, and from no other', async (t) => {
    const addresses = ['127.0.1.1', '127.0.1.2', '127.0.2.1', '127.0.3.9']
    const bob = await start({ scenario: 'uas-answer.xml', port: await phone(t, 'bob'), calls: addresses.length })
    for (const host of addresses) {
      const r = await call('trunk', USERS.bob.number, { host, port: await freePort() })
      t.equal(answered(r), 200, `from ${host}\n${r.summary}`)
    }
    t.equal((await bob.done).code, 0)
    const ringing = await start({ scenario: 'uas-ring.xml', port: await phone(t, 'bob') })
    for (const host of ['127.0.1.3', '127.0.4.1']) {
      const r = await call('trunk', USERS.bob.number, { host, port: await freePort() })
      t.equal(
        finalResponses(r, 'INVITE')[0],
        401,
        `from ${host}: not the trunk, so challenged as a phone\n${r.summary}`,
      )
    }
    ringing.stop()
    t.same(requests(await ringing.done, 'INVITE'), [], "bob's phone never rang")
  })

  t.test('early media from the ITSP reaches the phone; DTMF (RFC 4733) passes both ways', async (t) => {
    await pbx.rx('rtp set debug on')
    t.teardown(() => pbx.rx('rtp set debug off'))
    const from = pbx.log().length
    const trunk = await start({
      scenario: 'uas-early-media.xml',
      port: pbx.trunkPort,
      media: rtpPcap([...silence(0.2), ...dtmf('5')]),
    })
    const alice = await start({
      scenario: 'uac-call.xml',
      port: await freePort(),
      auth: auth('alice'),
      keys: { from: 'alice', to: '+46701234567' },
      media: rtpPcap([...silence(0.2), ...dtmf('7')]),
    })
    const dtmfTo = (port: number) =>
      pbx.waitForLog(new RegExp(`Sent RTP DTMF packet to\\s+127\\.0\\.0\\.1:${port}\\b`), { from })
    await dtmfTo(alice.mediaPort)
    t.pass("the ITSP's key press, sent before the answer, reaches the phone")
    await dtmfTo(trunk.mediaPort)
    t.pass("the phone's key press reaches the ITSP")
    const r = await alice.done
    t.equal(answered(r), 200, r.summary)
    const early = r.messages.find((m) => m.status === 183)
    t.match(early?.body, /^m=audio \d+ RTP\/AVP/m, 'the phone gets 183 Session Progress with SDP')
    t.equal((await trunk.done).code, 0)
  })

  t.test("the ITSP's busy and unreachable reach the phone as the same responses", async (t) => {
    const port = await phone(t, 'alice')
    for (const status of [486, 404, 480]) {
      const trunk = await start({ scenario: 'uas-reject.xml', port: pbx.trunkPort })
      const r = await call('alice', `+46701234${status}`, { port })
      const got = await trunk.done
      t.equal(answered(r), status, `${r.summary}\nthe ITSP:\n${got.summary}`)
      t.equal(got.code, 0, got.errors)
    }
  })

  t.test('a phone that puts a trunk call on hold and back keeps the call', async (t) => {
    const bob = await start({ scenario: 'uas-answer-hold.xml', port: await phone(t, 'bob') })
    const r = await call('trunk', USERS.bob.number)
    t.equal(answered(r), 200, r.summary)
    t.equal(r.code, 0, 'the ITSP is told when bob hangs up, not before')
    const got = await bob.done
    t.equal(got.code, 0, `both re-INVITEs answered 200 OK\n${got.summary}`)
  })
}
