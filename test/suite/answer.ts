// dp_answer on a real Asterisk: a call in dp_entry_answer is answered for a user's number, in
// whatever state the user's phones are, and rejected for any other number.
import t from 'tap'
import { startTestPbx, USERS } from '../helpers/asterisk.ts'
import { driver, finalResponses, findTools, requests } from '../helpers/sipp.ts'

// Numbers whose hints are custom device states: the CLI sets one to each state but UNKNOWN, which
// is what a custom device never set reports.
const CUSTOM = '+15550000000'
const NEVER_SET = '+15550000001'

const tools = findTools()
if (typeof tools === 'string') t.plan(0, `skipped: ${tools}`)
else {
  const pbx = await startTestPbx(tools.asterisk, {
    append: {
      'extensions_local.conf': `[dp_lookup](+)\nexten => ${CUSTOM},hint,Custom:probe\nexten => ${NEVER_SET},hint,Custom:never-set\n`,
    },
  })
  t.teardown(() => pbx.stop())
  const { start, phone, call } = driver(tools.sipp, pbx)
  // The probe endpoint's calls go to dp_entry_answer.
  const probe = async (to: string) => {
    const r = await call('probe', to)
    return { final: finalResponses(r, 'INVITE').at(-1), hungUp: /<- BYE/.test(r.summary), summary: r.summary }
  }

  const states = {
    NOT_INUSE: true,
    INUSE: true,
    BUSY: true,
    RINGING: true,
    RINGINUSE: true,
    ONHOLD: true,
    UNAVAILABLE: true,
    UNKNOWN: false,
    INVALID: false,
  }
  for (const [state, answered] of Object.entries(states)) {
    t.test(`${state}: ${answered ? 'answered, then hung up' : 'rejected'}`, async (t) => {
      const device = state === 'UNKNOWN' ? 'Custom:never-set' : 'Custom:probe'
      if (state !== 'UNKNOWN') await pbx.rx(`devstate change ${device} ${state}`)
      t.equal(/Result: (\w+)/.exec(await pbx.rx(`dialplan eval function DEVICE_STATE(${device})`))?.[1], state)
      const r = await probe(state === 'UNKNOWN' ? NEVER_SET : CUSTOM)
      if (answered) {
        t.equal(r.final, 200, r.summary)
        t.ok(r.hungUp, 'Asterisk hangs up')
      } else {
        t.equal(r.final, 404, r.summary)
      }
    })
  }

  t.test("real phones: a user's number is answered without ringing them; others are rejected", async (t) => {
    t.equal((await probe(USERS.dave.number)).final, 200, 'nobody registered (UNAVAILABLE)')
    const alice = await start({ scenario: 'uas-ring.xml', port: await phone(t, 'alice') })
    t.equal((await probe(USERS.alice.number)).final, 200, 'registered and idle (NOT_INUSE)')
    alice.stop()
    t.same(requests(await alice.done, 'INVITE'), [], "alice's phone did not ring")
    t.equal((await probe('+12025550199')).final, 404, 'no user has this number')
  })
}
