// Recording voicemail greetings (dp_ivr_recgreet, *86) on a real Asterisk, and callers hearing
// them. The caller's keys and voice are one RTP stream (media.pcap), timed against the prompts.
import t, { type Test } from 'tap'
import { stat } from 'node:fs/promises'
import { join } from 'node:path'
import { startTestPbx, USERS, type UserName } from '../helpers/asterisk.ts'
import { driver, dtmf, finalResponses, findTools, rtpPcap, silence, tone, type RtpPacket } from '../helpers/sipp.ts'

/** What a caller does, in order: seconds of silence, a key, or seconds of speech (a tone). */
type Step = number | { key: string } | { speak: number }

const media = (steps: Step[]) =>
  rtpPcap(
    steps.flatMap((s): RtpPacket[] => (typeof s === 'number' ? silence(s) : 'key' in s ? dtmf(s.key) : tone(s.speak))),
  )

// Recording one greeting from the menu: the key, its prompt and the beep (about 6 s), speech, # to
// end it ("message saved", 2 s), back at the menu.
const record = (key: string): Step[] => [{ key }, 6.5, { speak: 3 }, { key: '#' }, 3.5]

const tools = findTools()
if (typeof tools === 'string') t.plan(0, `skipped: ${tools}`)
else {
  const pbx = await startTestPbx(tools.asterisk)
  t.teardown(() => pbx.stop())
  const { start, phone, call } = driver(tools.sipp, pbx)
  const greetings = (user: UserName) => join(pbx.spoolDir, 'voicemail/example.com', user)
  // Asterisk logs a file by its format's name (a .wav plays as .slin).
  const played = (file: string) => new RegExp(`Playing '${file.replace(/[.+]/g, '\\$&')}\\.\\w+'`)

  /** `user` dials *86 and goes through `steps`; Asterisk hangs up on the last one, *. */
  const menu = async (t: Test, user: UserName, steps: Step[]) => {
    const r = await call(user, '*86', { media: media([1, ...steps, { key: '*' }, 3]) })
    t.equal(finalResponses(r, 'INVITE').at(-1), 200, `the menu answers\n${r.summary}`)
    t.match(r.summary, /<- BYE/, 'and says goodbye')
  }

  /** `from` calls `user`, who doesn't answer; what Asterisk logged meanwhile, once voicemail is over. */
  const callAndListen = async (t: Test, user: UserName, from: UserName | 'trunk') => {
    const start = pbx.log().length
    const r = await call(from, USERS[user].number!, { media: rtpPcap(tone(1)) })
    t.match(r.summary, /<- SIP\/2\.0 200 OK[^]*<- BYE/, `voicemail answered, then hung up\n${r.summary}`)
    return pbx.log().slice(start)
  }

  // Each test is a different user's, so they run side by side.
  t.jobs = 4
  t.test('a user records unavailable and busy greetings, and callers hear the one that fits', async (t) => {
    await menu(t, 'alice', [...record('1'), ...record('2')])
    for (const g of ['unavailable', 'busy'])
      t.ok((await stat(join(greetings('alice'), `${g}.wav`))).size > 8000, `${g}.wav recorded`)
    t.match(
      await callAndListen(t, 'alice', 'trunk'),
      played(join(greetings('alice'), 'unavailable')),
      'no phone registered: the unavailable greeting',
    )
    const busy = await start({ scenario: 'uas-busy.xml', port: await phone(t, 'alice') })
    t.match(
      await callAndListen(t, 'alice', 'trunk'),
      played(join(greetings('alice'), 'busy')),
      'the phone busy: the busy greeting',
    )
    t.equal((await busy.done).code, 0)
  })

  t.test('a temporary greeting overrides the others until it is erased', async (t) => {
    await menu(t, 'bob', [...record('1'), ...record('4')])
    t.match(await callAndListen(t, 'bob', 'carol'), played(join(greetings('bob'), 'temp')))
    // 4 again, with a temporary greeting recorded: 1 re-record, 2 erase ("removed", 3 s).
    await menu(t, 'bob', [{ key: '4' }, 2, { key: '2' }, 4])
    await t.rejects(stat(join(greetings('bob'), 'temp.wav')), 'temp.wav erased')
    t.match(await callAndListen(t, 'bob', 'carol'), played(join(greetings('bob'), 'unavailable')))
  })

  t.test('every key the menu offers leads somewhere; others are refused', async (t) => {
    const from = pbx.log().length
    // 5 (change password) is not there; 9 is not offered.
    await menu(t, 'dave', [{ key: '5' }, 4, { key: '9' }, 5])
    const prompts = [
      ...pbx
        .log()
        .slice(from)
        .matchAll(/<PJSIP\/dave-\w+> Playing '([^']+)\.gsm'/g),
    ].map((m) => m[1])
    t.same(
      prompts.filter((p) => p !== 'vm-options'),
      ['feature-not-avail-line', 'invalid', 'vm-goodbye'],
    )
  })

  t.test('users without a mailbox have no greetings to record', async (t) => {
    const r = await call('erin', '*86')
    t.match(r.summary, /<- BYE/, 'told so, and hung up on')
  })
}
