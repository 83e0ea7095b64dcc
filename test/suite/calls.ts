// Calls through the PrivateDial configuration on a real Asterisk, with sipp as phones and trunk.
import t from 'tap'
import { execa } from 'execa'
import { freePort, startTestPbx, USERS } from '../helpers/asterisk.ts'
import {
  driver,
  finalResponses,
  findTools,
  requests,
  rtpPcap,
  tone,
  TRUNK_CALLER,
  type SippResult,
} from '../helpers/sipp.ts'

const tools = findTools()
if (typeof tools === 'string') t.plan(0, `skipped: ${tools}`)
else {
  const pbx = await startTestPbx(tools.asterisk)
  t.teardown(() => pbx.stop())
  const { run, start, auth, phone, call } = driver(tools.sipp, pbx)
  const answered = (r: SippResult) => finalResponses(r, 'INVITE').at(-1)

  t.test('Asterisk boots on the shipped configuration without errors', async (t) => {
    t.comment(pbx.version)
    t.notMatch(pbx.bootLog, /ERROR\[/, 'no ERROR at boot')
    const tls = await execa('openssl', ['s_client', '-connect', `127.0.0.1:${pbx.tlsPort}`, '-brief'], {
      input: '',
      reject: false,
      timeout: 10_000,
    })
    t.match(tls.stderr, /Protocol version: TLSv1\.3/, 'the TLS transport speaks TLS 1.3')
  })

  t.test('registration', async (t) => {
    t.test('a phone registers with its user name and password', async (t) => {
      const port = await phone(t, 'alice')
      t.match(await pbx.rx('pjsip show contacts'), `alice/sip:alice@127.0.0.1:${port}`)
    })
    t.test('over TCP too', async (t) => {
      const r = await run({
        scenario: 'uac-register.xml',
        port: await freePort(),
        auth: auth('alice'),
        transport: 'tcp',
        keys: { expires: '0' },
      })
      t.equal(finalResponses(r, 'REGISTER').at(-1), 200, r.summary)
    })
    for (const [what, user, password] of [
      ['a wrong password', 'alice', 'not-alices'],
      ['an unknown user', 'mallory', USERS.alice.password],
    ] as const) {
      t.test(`${what} is refused and leaves no contact`, async (t) => {
        const port = await freePort()
        const r = await run({ scenario: 'uac-register.xml', port, auth: { user, password } })
        t.same(finalResponses(r, 'REGISTER'), [401, 401], `challenged, then refused\n${r.summary}`)
        t.notMatch(await pbx.rx('pjsip show contacts'), `:${port}`)
      })
    }
  })

  t.test("a call to a user's number rings every registered phone at once; SRTP is offered to them", async (t) => {
    const [first, second] = [await phone(t, 'bob'), await phone(t, 'bob')]
    const answers = await start({ scenario: 'uas-answer.xml', port: first })
    const rings = await start({ scenario: 'uas-ring.xml', port: second })
    const caller = await call('alice', USERS.bob.number, { port: await phone(t, 'alice') })
    const [a, r] = [await answers.done, await rings.done]
    t.equal(answered(caller), 200, `the caller is connected\n${caller.summary}`)
    t.equal(a.code, 0, a.summary)
    t.equal(r.code, 0, r.summary)
    const [invite] = requests(r, 'INVITE')
    t.match(invite?.header('From'), `<sip:${USERS.alice.number}@`, "the phones see alice's number")
    t.match(
      invite?.body,
      /^a=crypto:\d+ AES_CM_128_HMAC_SHA1_80 inline:/m,
      'SRTP keys are offered (SDES), and a phone without SRTP still connects',
    )
    for (const codec of ['opus/48000/2', 'G722/8000', 'PCMA/8000', 'PCMU/8000'])
      t.match(invite?.body, new RegExp(`^a=rtpmap:\\d+ ${codec}`, 'm'), `${codec} offered`)
    t.match(
      requests(r, 'CANCEL')[0]?.header('Reason'),
      /cause=200/,
      'the phone that rang on is told the call was answered elsewhere',
    )
  })

  t.test('national and international numbers are turned into +E.164', async (t) => {
    const dialled = [USERS.bob.number, '12025550102', '02025550102', '0012025550102']
    const bob = await start({ scenario: 'uas-answer.xml', port: await phone(t, 'bob'), calls: dialled.length })
    const alice = await phone(t, 'alice')
    for (const number of dialled) {
      const r = await call('alice', number, { port: alice })
      t.equal(answered(r), 200, `${number} reaches bob\n${r.summary}`)
    }
    t.equal((await bob.done).code, 0)
  })

  t.test("calls to other numbers leave through the caller's trunk, as +E.164, with the caller's number", async (t) => {
    const cases = [
      ['+46701234567', '+46701234567'],
      ['0046701234567', '+46701234567'],
      ['0701234567', '+1701234567'],
    ] as const
    const trunk = await start({ scenario: 'uas-answer.xml', port: pbx.trunkPort, calls: cases.length })
    const alice = await phone(t, 'alice')
    for (const [number] of cases) {
      const r = await call('alice', number, { port: alice })
      t.equal(answered(r), 200, `${number} is connected\n${r.summary}`)
    }
    const got = await trunk.done
    t.equal(got.code, 0, got.summary)
    const invites = requests(got, 'INVITE')
    t.same(
      invites.map((i) => /^INVITE sip:([^@]+)@/.exec(i.startLine)?.[1]),
      cases.map((c) => c[1]),
    )
    for (const i of invites) {
      t.match(i.header('From'), `<sip:${USERS.alice.number}@`, "the trunk sees alice's number")
      t.notMatch(i.body, /a=crypto/, 'no SRTP towards the trunk')
    }
  })

  t.test('a w_term_i user cannot call out through the trunk', async (t) => {
    const trunk = await start({ scenario: 'uas-answer.xml', port: pbx.trunkPort })
    const carol = await call('carol', '+46701234567', { port: await phone(t, 'carol') })
    t.equal(answered(carol), 404, `carol's call is refused\n${carol.summary}`)
    // Alice may; hers is the first and only call the trunk gets.
    await call('alice', '+46701234569', { port: await phone(t, 'alice') })
    t.same(
      requests(await trunk.done, 'INVITE').map((i) => i.startLine.split(/[:@]/)[1]),
      ['+46701234569'],
    )
  })

  t.test('a "number" with more than digits goes nowhere', async (t) => {
    // A SIP user part may hold , & and /, which would otherwise reach Dial's and Gosub's arguments.
    const bob = await start({ scenario: 'uas-ring.xml', port: await phone(t, 'bob') })
    for (const number of ['+1&PJSIP/bob', '+1,+12025550102', '0046701234567,4', '12025550102&x']) {
      const r = await call('alice', number)
      t.equal(answered(r), 404, `${number}\n${r.summary}`)
    }
    bob.stop()
    t.same(requests(await bob.done, 'INVITE'), [], "bob's phone never rang")
  })

  t.test('the trunk cannot call out through itself', async (t) => {
    // Were it routed out, the INVITE would come back to this very sipp and fail its scenario.
    const own = await call('trunk', '+46701234568')
    t.equal(own.code, 0, own.summary)
    t.equal(answered(own), 404, "the trunk's call is refused")
  })

  t.test("trunk calls to a user's number ring all the user's phones; other numbers are rejected", async (t) => {
    const [first, second] = [await phone(t, 'bob'), await phone(t, 'bob')]
    const answers = await start({ scenario: 'uas-answer.xml', port: first })
    const rings = await start({ scenario: 'uas-ring.xml', port: second })
    const r = await call('trunk', '12025550102')
    t.equal(answered(r), 200, r.summary)
    t.equal((await answers.done).code, 0)
    t.match(
      requests(await rings.done, 'INVITE')[0]?.header('From'),
      `<sip:${TRUNK_CALLER}@`,
      "bob's phones see the caller's number",
    )
    const unknown = await call('trunk', '+12025550199')
    t.same(finalResponses(unknown, 'INVITE'), [404], unknown.summary)
  })

  t.test('requests without the right credentials get nothing', async (t) => {
    const bob = await start({ scenario: 'uas-ring.xml', port: await phone(t, 'bob') })
    for (const [what, user, password] of [
      ['an unknown user', 'mallory', 'x'],
      ['a wrong password', 'alice', 'not-alices'],
    ] as const) {
      const keys = { from: user, to: USERS.bob.number, body: 'hi' }
      const c = await run({ scenario: 'uac-call.xml', port: await freePort(), auth: { user, password }, keys })
      t.same(finalResponses(c, 'INVITE'), [401, 401], `a call from ${what} is challenged and refused\n${c.summary}`)
      const m = await run({ scenario: 'uac-message.xml', port: await freePort(), auth: { user, password }, keys })
      t.same(finalResponses(m, 'MESSAGE'), [401, 401], `a text from ${what} is challenged and refused\n${m.summary}`)
    }
    bob.stop()
    t.same(requests(await bob.done, 'INVITE'), [], "bob's phone never rang")
  })

  t.test('video is offered on to the called phone', async (t) => {
    const erin = await start({ scenario: 'uas-busy.xml', port: await phone(t, 'erin') })
    const video = `\r\nm=video ${await freePort()} RTP/AVP 96\r\na=rtpmap:96 VP8/90000`
    await call('alice', USERS.erin.number, { port: await phone(t, 'alice'), keys: { video } })
    const [invite] = requests(await erin.done, 'INVITE')
    t.match(invite?.body, /^m=video \d+ RTP\/AVP \d+/m)
    t.match(invite?.body, /^a=rtpmap:\d+ VP8\/90000/m)
  })

  t.test('phones behind NAT are answered where their packets come from, and media is relayed', async (t) => {
    // The phone claims an address nothing listens on, as a phone behind NAT does.
    const nat = { via: '192.0.2.10:5060', contact: 'sip:alice@192.0.2.10:5060', sdp_host: '192.0.2.10' }
    const port = await phone(t, 'alice', nat)
    t.match(
      await pbx.rx('pjsip show contacts'),
      `alice/sip:alice@127.0.0.1:${port}`,
      'its contact is where it registered from (rewrite_contact)',
    )
    await pbx.rx('rtp set debug on')
    t.teardown(() => pbx.rx('rtp set debug off'))
    const alice = await start({ scenario: 'uas-answer.xml', port, keys: nat, media: rtpPcap(tone(1)) })
    const r = await call('bob', USERS.alice.number, { port: await phone(t, 'bob'), media: rtpPcap(tone(1)) })
    t.equal(answered(r), 200, 'the call reaches it (force_rport, rewrite_contact)')
    const got = await alice.done
    t.equal(got.code, 0, got.summary)
    t.equal(requests(got, 'INVITE').length, 1, 'no re-INVITE: Asterisk stays in the media path (direct_media=no)')
    await pbx.waitForLog(new RegExp(`Sent RTP (P2P )?packet to\\s+127\\.0\\.0\\.1:${alice.mediaPort}\\b`))
    t.pass('its media goes where its media comes from, not to the address in its SDP (rtp_symmetric)')
  })
}
