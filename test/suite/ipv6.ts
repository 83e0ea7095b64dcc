// Dual stack on a real Asterisk: phones on IPv6 (::1) and on IPv4 (127.0.0.1) register, call and
// text each other and the trunk, over the IPv6 twins of the shipped transports.
import t from 'tap'
import { execa } from 'execa'
import { freePort, hasLoopback6, startTestPbx, USERS } from '../helpers/asterisk.ts'
import { driver, finalResponses, findTools, requests, rtpPcap, tone, type SippResult } from '../helpers/sipp.ts'

const tools = findTools()
if (typeof tools === 'string') t.plan(0, `skipped: ${tools}`)
else if (!(await hasLoopback6())) t.plan(0, 'skipped: this host has no IPv6 loopback (::1)')
else {
  const pbx = await startTestPbx(tools.asterisk)
  t.teardown(() => pbx.stop())
  const v6 = driver(tools.sipp, pbx, '::1')
  const v4 = driver(tools.sipp, pbx)
  const answered = (r: SippResult) => finalResponses(r, 'INVITE').at(-1)

  t.test('the IPv6 transports are up beside the IPv4 ones, TLS included', async (t) => {
    const transports = await pbx.rx('pjsip show transports')
    for (const name of ['udp6', 'tcp6', 'tls6'])
      t.match(transports, new RegExp(`^Transport:\\s+${name}\\s+\\w+\\s+\\d+\\s+\\d+\\s+\\[::1\\]:`, 'm'), name)
    const tls = await execa('openssl', ['s_client', '-connect', `[::1]:${pbx.tlsPort}`, '-brief'], {
      input: '',
      reject: false,
      timeout: 10_000,
    })
    t.match(tls.stderr, /Protocol version: TLSv1\.3/, 'TLS over IPv6')
  })

  t.test('a phone registers over IPv6, UDP and TCP', async (t) => {
    const port = await v6.phone(t, 'alice')
    t.match(await pbx.rx('pjsip show contacts'), `alice/sip:alice@[::1]:${port}`)
    const r = await v6.run({
      scenario: 'uac-register.xml',
      port: await freePort(),
      auth: v6.auth('alice'),
      transport: 'tcp',
      keys: { expires: '0' },
    })
    t.equal(finalResponses(r, 'REGISTER').at(-1), 200, r.summary)
  })

  for (const [from, to] of [
    [v6, v4],
    [v4, v6],
    [v6, v6],
  ] as const) {
    const name = (d: typeof v4) => (d === v6 ? 'IPv6' : 'IPv4')
    t.test(`an ${name(from)} phone calls and texts an ${name(to)} phone`, async (t) => {
      const bob = await to.phone(t, 'bob')
      const answers = await to.start({ scenario: 'uas-answer.xml', port: bob, media: rtpPcap(tone(1)) })
      const rtpFrom = pbx.log().length
      await pbx.rx('rtp set debug on')
      t.teardown(() => pbx.rx('rtp set debug off'))
      const r = await from.call('alice', USERS.bob.number, {
        port: await from.phone(t, 'alice'),
        media: rtpPcap(tone(1)),
      })
      t.equal(answered(r), 200, `connected\n${r.summary}`)
      const got = await answers.done
      t.equal(got.code, 0, got.summary)
      const media = to === v6 ? `\\[::1\\]:${answers.mediaPort}` : `127\\.0\\.0\\.1:${answers.mediaPort}`
      await pbx.waitForLog(new RegExp(`Sent RTP (P2P )?packet to\\s+${media}\\b`), { from: rtpFrom })
      t.pass(`the caller's audio reaches the ${name(to)} phone`)
      const [invite] = requests(got, 'INVITE')
      t.match(invite?.header('From'), `<sip:${USERS.alice.number}@`)
      const family = to === v6 ? 'IP6 ::1' : 'IP4 127.0.0.1'
      t.match(invite?.body, new RegExp(`^c=IN ${family}\\r?$`, 'm'), `media offered on ${name(to)}`)
      const inbox = await to.start({ scenario: 'uas-message.xml', port: bob })
      t.equal(finalResponses(await from.text('alice', USERS.bob.number, 'hej'), 'MESSAGE').at(-1), 202)
      t.same(
        requests(await inbox.done, 'MESSAGE').map((m) => m.body),
        ['hej'],
      )
    })
  }

  t.test('an IPv6 phone calls and texts out through the (IPv4) trunk', async (t) => {
    const trunk = await v4.start({ scenario: 'uas-answer.xml', port: pbx.trunkPort })
    const alice = await v6.phone(t, 'alice')
    const r = await v6.call('alice', '+46701234567', { port: alice })
    t.equal(answered(r), 200, r.summary)
    t.same(
      requests(await trunk.done, 'INVITE').map((i) => i.startLine.split(/[:@]/)[1]),
      ['+46701234567'],
    )
    const texts = await v4.start({ scenario: 'uas-message.xml', port: pbx.trunkPort })
    t.equal(finalResponses(await v6.text('alice', '+46701234567', 'out', { port: alice }), 'MESSAGE').at(-1), 202)
    t.same(
      requests(await texts.done, 'MESSAGE').map((m) => m.body),
      ['out'],
    )
  })

  t.test('the trunk calls and texts an IPv6 phone', async (t) => {
    const bob = await v6.phone(t, 'bob')
    const answers = await v6.start({ scenario: 'uas-answer.xml', port: bob })
    const r = await v4.call('trunk', USERS.bob.number)
    t.equal(answered(r), 200, r.summary)
    t.equal((await answers.done).code, 0)
    const inbox = await v6.start({ scenario: 'uas-message.xml', port: bob })
    t.equal(finalResponses(await v4.text('trunk', USERS.bob.number, 'in'), 'MESSAGE').at(-1), 202)
    t.same(
      requests(await inbox.done, 'MESSAGE').map((m) => m.body),
      ['in'],
    )
  })
}
