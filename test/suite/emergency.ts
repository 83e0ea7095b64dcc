// Emergency calls on a real Asterisk, with sipp as phones and trunks: every user reaches the
// emergency numbers, whatever their template, through their own trunk or the default one.
import t from 'tap'
import { readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { parseConf, printConf, setValue } from '../../src/config/conf.ts'
import { freePort, startTestPbx, USERS } from '../helpers/asterisk.ts'
import { driver, finalResponses, findTools, requests, type SippResult } from '../helpers/sipp.ts'

const tools = findTools()
if (typeof tools === 'string') t.plan(0, `skipped: ${tools}`)
else {
  // The default emergency trunk, a second ITSP: a call that reaches it came by EMERGENCY_TRUNK.
  const sosPort = await freePort()
  const pbx = await startTestPbx(tools.asterisk, {
    append: { 'pjsip_endpoint.conf': `[itsp:sos](w_trunk)\nremote_hosts = 127.0.0.1:${sosPort}\n` },
    edit: { 'extensions_local.conf': (doc) => setValue(doc, 'globals', 'EMERGENCY_TRUNK', 'itsp:sos') },
  })
  t.teardown(() => pbx.stop())
  const { start, phone, call } = driver(tools.sipp, pbx)
  const answered = (r: SippResult) => finalResponses(r, 'INVITE').at(-1)
  const dialled = (r: SippResult) => requests(r, 'INVITE').map((i) => /^INVITE sip:([^@;]+)[@;]/.exec(i.startLine)?.[1])

  t.test('a w_term_i user calls emergency numbers through the default emergency trunk, as dialled', async (t) => {
    const numbers = ['112', '911', '000']
    const sos = await start({ scenario: 'uas-answer.xml', port: sosPort, calls: numbers.length })
    const carol = await phone(t, 'carol')
    for (const number of numbers) {
      const from = pbx.log().length
      const r = await call('carol', number, { port: carol })
      t.equal(answered(r), 200, `${number} is connected\n${r.summary}`)
      const [line] = await pbx.waitForLog(/WARNING\[[^\n]*Emergency call to \d+ from \S+[^\n]*/, { from })
      t.match(line, `Emergency call to ${number} from carol (${USERS.carol.number}) through itsp:sos`)
    }
    const got = await sos.done
    t.equal(got.code, 0, got.summary)
    t.same(dialled(got), numbers, 'the ITSP gets each number exactly as dialled')
    for (const i of requests(got, 'INVITE'))
      t.match(i.header('From'), `<sip:${USERS.carol.number}@`, "with carol's number as caller ID")
  })

  t.test('every other number stays out of reach for a w_term_i user', async (t) => {
    const sos = await start({ scenario: 'uas-answer.xml', port: sosPort })
    const trunk = await start({ scenario: 'uas-answer.xml', port: pbx.trunkPort })
    const carol = await phone(t, 'carol')
    for (const number of ['+46701234567', '0046701234567', '1120', '11', '+112']) {
      const r = await call('carol', number, { port: carol })
      t.equal(answered(r), 404, `${number} is refused\n${r.summary}`)
    }
    // Calls are routed in order: alice's 112 is the first and only call her trunk gets.
    await call('alice', '112', { port: await phone(t, 'alice') })
    t.same(dialled(await trunk.done), ['112'])
    sos.stop()
    t.same(requests(await sos.done, 'INVITE'), [], 'the emergency trunk got no call')
  })

  t.test("a w_term_io user's emergency call leaves through the user's own trunk, logged", async (t) => {
    const trunk = await start({ scenario: 'uas-answer.xml', port: pbx.trunkPort })
    const from = pbx.log().length
    const r = await call('alice', '112', { port: await phone(t, 'alice') })
    t.equal(answered(r), 200, r.summary)
    const got = await trunk.done
    t.same(dialled(got), ['112'], 'not turned into +E.164')
    t.match(requests(got, 'INVITE')[0]?.header('From'), `<sip:${USERS.alice.number}@`)
    await pbx.waitForLog(new RegExp(`WARNING\\[.*Emergency call to 112 from alice \\(\\${USERS.alice.number}\\)`), {
      from,
    })
    t.pass('one WARNING names the user')
  })

  t.test('a busy emergency line is reported to the caller, never voicemail', async (t) => {
    const sos = await start({ scenario: 'uas-busy.xml', port: sosPort })
    const r = await call('carol', '112', { port: await phone(t, 'carol') })
    t.equal(answered(r), 486, `busy, not answered by anything\n${r.summary}`)
    t.equal((await sos.done).code, 0)
  })

  t.test('the trunk cannot call emergency numbers out through any trunk', async (t) => {
    // Were it routed out to itself, this very sipp would get the INVITE and fail its scenario.
    const sos = await start({ scenario: 'uas-answer.xml', port: sosPort })
    const r = await call('trunk', '112')
    t.equal(r.code, 0, r.summary)
    t.equal(answered(r), 404, "the trunk's call is refused")
    sos.stop()
    t.same(requests(await sos.done, 'INVITE'), [], 'the emergency trunk got no call')
  })

  t.test('a user without any trunk is told the call could not be placed, and it is logged', async (t) => {
    const setTrunk = async (trunk: string) => {
      const file = join(pbx.dir, 'etc/extensions_local.conf')
      const doc = parseConf(await readFile(file, 'utf8'), 'extensions_local.conf')
      setValue(doc, 'globals', 'EMERGENCY_TRUNK', trunk)
      await writeFile(file, printConf(doc))
      await pbx.rx('dialplan reload')
    }
    await setTrunk('')
    t.teardown(() => setTrunk('itsp:sos'))
    const from = pbx.log().length
    const r = await call('carol', '911', { port: await phone(t, 'carol') })
    t.equal(answered(r), 503, r.summary)
    await pbx.waitForLog(/WARNING\[.*Emergency call to 911 from carol .* not placed, no trunk/, { from })
    t.pass('logged')
  })
}
