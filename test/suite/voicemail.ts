// Voicemail through the PrivateDial configuration on a real Asterisk: calls nobody takes are
// recorded by MiniVM and handed to mailcmd (here a stand-in that keeps each mail).
import t, { type Test } from 'tap'
import { readdir } from 'node:fs/promises'
import { join } from 'node:path'
import { setValue } from '../../src/config/conf.ts'
import { startTestPbx, USERS, type UserName } from '../helpers/asterisk.ts'
import { driver, finalResponses, findTools, rtpPcap, tone, TRUNK_CALLER } from '../helpers/sipp.ts'

/** A header value as read, RFC 2047 encoded-words (=?UTF-8?Q?...?=) decoded. */
function decodeWords(value: string): string {
  return value.replace(/=\?UTF-8\?Q\?([^?]*)\?=/gi, (_, q: string) =>
    Buffer.from(
      q.replace(/_/g, ' ').replace(/=([0-9A-F]{2})/gi, (_m, h: string) => String.fromCharCode(parseInt(h, 16))),
      'latin1',
    ).toString('utf8'),
  )
}

/** The parts of a MIME mail MiniVM writes: headers, then its text and attachment parts. */
function mimeParts(mail: string): { headers: string; parts: { headers: string; body: string }[] } {
  const [headers = '', ...rest] = mail.split(/\r?\n\r?\n/)
  const boundary = /boundary="([^"]+)"/.exec(headers)?.[1] ?? ''
  const parts = rest
    .join('\n\n')
    .split(`--${boundary}`)
    .map((p) => p.trim())
    .filter((p) => p && p !== '--' && !p.startsWith('--'))
    .map((p) => {
      const split = p.search(/\r?\n\r?\n/)
      return { headers: p.slice(0, split), body: p.slice(split).trim() }
    })
  return { headers, parts }
}

const tools = findTools()
if (typeof tools === 'string') t.plan(0, `skipped: ${tools}`)
else {
  // Ring for 2 s, not 30, before voicemail answers.
  const pbx = await startTestPbx(tools.asterisk, {
    edit: { 'extensions_local.conf': (doc) => setValue(doc, 'globals', 'DIAL_TIMEOUT', '2') },
  })
  t.teardown(() => pbx.stop())
  const { start, phone, call } = driver(tools.sipp, pbx)

  /**
   * A call to `user` from the trunk or another user that talks for a while: through the greeting
   * (about 9 s), then into the recording, which ends when the audio does.
   */
  const leaveMessage = async (t: Test, user: UserName, from: UserName | 'trunk') => {
    const caller = from === 'trunk' ? TRUNK_CALLER : USERS[from].number!
    const r = await call(from, USERS[user].number!.slice(1), { media: rtpPcap(tone(14)) })
    t.equal(finalResponses(r, 'INVITE').at(-1), 200, `voicemail answers\n${r.summary}`)
    t.match(r.summary, /<- BYE/, 'and hangs up when the message is over')
    const mail = await pbx.waitForMail(new RegExp(`^To: .*<${user}@example\\.com>`, 'm'))
    const { headers, parts } = mimeParts(mail)
    t.match(
      decodeWords(headers),
      new RegExp(`^Subject: Voicemail from .*\\${caller}`, 'm'),
      "the subject names the caller's number",
    )
    t.match(parts[0]?.body, new RegExp(`\\${caller}.* left you a 0:\\d\\d long message`))
    const wav = parts.find((p) => /Content-Type: audio\/x-wav/.test(p.headers))
    t.ok(wav, 'the recording is attached as WAV')
    const audio = Buffer.from(wav?.body ?? '', 'base64')
    t.equal(audio.subarray(0, 4).toString(), 'RIFF')
    t.equal(audio.subarray(8, 12).toString(), 'WAVE')
    t.ok(audio.length > 16_000, `it holds more than a second of audio (${audio.length} bytes)`)
  }

  /** Voicemails in the spool, other than greetings: what MinivmDelete should have removed. */
  const kept = async () =>
    (await readdir(join(pbx.spoolDir, 'voicemail'), { recursive: true }).catch(() => [] as string[])).filter(
      (f) => /\.(wav|txt)$/.test(f) && !/(^|\/)(busy|unavailable|temp|greet)\.wav$/.test(f),
    )

  // Each test is a different user's, so they run side by side.
  t.jobs = 3
  t.test('a call nobody answers goes to voicemail, mailed with the recording', async (t) => {
    const bob = await start({ scenario: 'uas-ring.xml', port: await phone(t, 'bob') })
    await leaveMessage(t, 'bob', 'trunk')
    t.equal((await bob.done).code, 0, 'the phone rang, then the call was taken away')
  })

  t.test('a call to a busy phone goes to voicemail', async (t) => {
    const carol = await start({ scenario: 'uas-busy.xml', port: await phone(t, 'carol') })
    await leaveMessage(t, 'carol', 'alice')
    t.equal((await carol.done).code, 0, 'the phone said busy')
  })

  t.test('a call to a user with no phone registered goes to voicemail', async (t) => {
    await leaveMessage(t, 'dave', 'erin')
  })

  t.test('a mailed recording is not kept', async (t) => {
    for (const user of ['bob', 'carol', 'dave']) await pbx.waitForMail(new RegExp(`<${user}@example\\.com>`))
    t.same(await kept(), [])
  })
}
