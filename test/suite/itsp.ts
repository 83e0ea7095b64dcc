// Calls and texts from ITSPs the way real ones send them, through the PrivateDial configuration on
// a real Asterisk, with sipp as the ITSP (the IP-identified trunk itsp:test) and as phones.
import t, { type Test } from 'tap'
import { startTestPbx, USERS } from '../helpers/asterisk.ts'
import { driver, finalResponses, findTools, requests, type SippResult } from '../helpers/sipp.ts'

const tools = findTools()
if (typeof tools === 'string') t.plan(0, `skipped: ${tools}`)
else {
  const pbx = await startTestPbx(tools.asterisk)
  t.teardown(() => pbx.stop())
  const { start, phone, call, text } = driver(tools.sipp, pbx)
  const answered = (r: SippResult) => finalResponses(r, 'INVITE').at(-1)
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
}
