// The texts service against a real Asterisk: texts for users whose phones are offline are kept and
// reach each phone when it registers. sipp sends as users, the trunk and the WebSMS endpoint; the
// real WebSMS service takes a webhook; phones are test/helpers/phone.ts (they answer OPTIONS).
import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createServer } from 'node:http'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { memoryLogger } from '../../src/base/log.ts'
import { textsService } from '../../src/texts/service.ts'
import { startWebsms } from '../../src/websms/service.ts'
import { USERS, type UserName } from '../helpers/asterisk.ts'
import type { Phone } from '../helpers/phone.ts'
import { driver, finalResponses, findTools, TRUNK_CALLER, type SippResult } from '../helpers/sipp.ts'
import { startTextsPbx } from '../helpers/texts.ts'
import { waitFor } from '../helpers/wait-for.ts'
import { startItsp } from '../helpers/websms-itsp.ts'

const SERVE = fileURLToPath(new URL('../fixtures/texts/serve.ts', import.meta.url))
const PATH_SECRET = 'texts-path-secret-0123456789'

// What breaks naive handling on the way through the dial plan, the store and AMI.
const HOSTILE = [
  'plain',
  'say "hi", then; a=b & c | d',
  '${EXTEN} $[1+1] (unbalanced',
  '100% +1 %41 \\ back\\slash',
  'Grüße, Åsa! 你好 😀👍🏽',
]

const tools = findTools()
if (typeof tools === 'string') t.plan(0, `skipped: ${tools}`)
else {
  const scratch = await mkdtemp(join(tmpdir(), 'pd-texts-'))
  t.teardown(() => rm(scratch, { recursive: true, force: true }))
  const itsp = await startItsp()
  t.teardown(() => itsp.close())
  const pbx = await startTextsPbx(tools.asterisk, join(scratch, 'unused'), {
    'websms.conf': `[elks]\npreset = 46elks\nurl = ${itsp.url}/a1/sms\nusername = u\npassword = p\ninbound_auth = path\ninbound_secret = ${PATH_SECRET}\n`,
  })
  t.teardown(() => pbx.stop())
  const { text } = driver(tools.sipp, pbx)
  const taken = (r: SippResult) => finalResponses(r, 'MESSAGE').at(-1)
  let stores = 0

  /** The service on a fresh store, in this process; its log is shown when the test fails. */
  const service = async (t: Test, env: Record<string, string> = {}) => {
    const svc = textsService()
    const ctx = pbx.context(pbx.env({ TEXT_STORE_DIR: join(scratch, `store-${++stores}`), ...env }))
    await svc.start(ctx)
    t.teardown(() => svc.stop(Date.now() + 5000))
    t.teardown(() => {
      if (!t.passing()) t.comment(`${ctx.log.lines.join('\n')}\n${pbx.log().slice(-4000)}`)
    })
    await waitFor('the service to log in to AMI', () => ctx.log.lines.some((l) => l.includes('contacts from Asterisk')))
    return { svc, log: ctx.log }
  }

  /** A phone of `user`, registered; unregistered and closed when the test ends. */
  const online = async (t: Test, user: UserName, callId?: string) => {
    const phone = await pbx.phone(user, callId)
    t.teardown(async () => {
      phone.answer()
      await phone.register(0).catch(() => undefined)
      await phone.close()
    })
    t.equal(await phone.register(), 200, `${user}'s phone on ${phone.port} registers`)
    return phone
  }
  const bodies = (phone: Phone) => phone.texts.map((m) => m.body)

  t.test('a text to a user with no phone online reaches each phone of theirs that registers later', async (t) => {
    await service(t)
    t.equal(taken(await text('alice', USERS.bob.number, 'while you were out 😀')), 202)
    const first = await online(t, 'bob')
    const [m] = await first.waitForTexts(1)
    t.equal(m?.body, 'while you were out 😀')
    t.match(m?.header('From'), `"Alice Liddell" <sip:${USERS.alice.number}@`, "from alice's number")
    t.match(m?.header('Date'), /^\w{3}, \d\d \w{3} \d{4} \d\d:\d\d:\d\d GMT$/, 'with the time it was sent')
    const second = await online(t, 'bob')
    const [m2] = await second.waitForTexts(1)
    t.equal(m2?.body, 'while you were out 😀', 'a second phone that registers later gets it too')
    t.equal(m2?.header('Date'), m?.header('Date'), 'with the same time')
  })

  t.test('a phone that changes networks does not get the same texts again', async (t) => {
    await service(t)
    t.equal(taken(await text('alice', USERS.bob.number, 'first')), 202)
    const before = await online(t, 'bob')
    await before.waitForTexts(1)
    // Same phone (same Call-ID), new address: Asterisk sees a new contact; the old one lingers.
    before.silence()
    const after = await online(t, 'bob', before.callId)
    t.not(after.uri, before.uri, 'registered under a new contact')
    t.equal(taken(await text('alice', USERS.bob.number, 'second')), 202)
    await after.waitForTexts(1)
    t.same(
      bodies(after),
      ['second'],
      'only the text it did not have; texts go in order, so "first" would have come first',
    )
  })

  t.test('texts from the trunk and from a WebSMS webhook wait the same way', async (t) => {
    await service(t)
    t.equal(taken(await text('trunk', USERS.bob.number, 'over the trunk')), 202)
    const log = memoryLogger('websms')
    const websms = await startWebsms({
      confDir: pbx.etc,
      port: 0,
      host: '127.0.0.1',
      spoolDir: join(scratch, 'websms-spool'),
      log,
      sipSourcePort: pbx.websmsPort,
    })
    t.teardown(() => websms.close())
    const hook = new URLSearchParams({ from: '+46701234567', to: USERS.bob.number, message: 'over WebSMS ✓' })
    const res = await fetch(`http://127.0.0.1:${websms.publicPort}/inbound/elks/${PATH_SECRET}`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: hook.toString(),
    })
    t.equal(res.status, 200, 'the webhook is taken')
    await waitFor('WebSMS to hand the text to Asterisk', () => websms.queued() === 0, 30_000)
    const bob = await online(t, 'bob')
    const got = await bob.waitForTexts(2)
    t.same(
      got.map((m) => m.body),
      ['over the trunk', 'over WebSMS ✓'],
    )
    t.match(got[0]?.header('From'), `<sip:${TRUNK_CALLER}@`, "the trunk caller's number")
    t.match(got[1]?.header('From'), '<sip:+46701234567@', "the WebSMS sender's number")
  })

  t.test('texts arrive in the order they were sent, unchanged', async (t) => {
    await service(t)
    for (const body of HOSTILE) t.equal(taken(await text('alice', USERS.dave.number, body)), 202, body)
    const dave = await online(t, 'dave')
    await dave.waitForTexts(HOSTILE.length)
    t.same(bodies(dave), HOSTILE)
  })

  t.test('a phone that went away without unregistering: texts wait for one that answers', async (t) => {
    const { log } = await service(t)
    const stale = await online(t, 'bob')
    stale.silence()
    t.equal(taken(await text('alice', USERS.bob.number, 'are you there?')), 202)
    await waitFor('the service to find the phone unreachable', () =>
      log.lines.some((l) => l.includes('did not answer after texts were sent')),
    )
    t.same(bodies(stale), [], 'the silent phone took nothing')
    const back = await online(t, 'bob')
    t.same(
      (await back.waitForTexts(1)).map((m) => m.body),
      ['are you there?'],
      'a phone that answers gets it',
    )
  })

  t.test('a text nobody picks up expires, and the sender is told', async (t) => {
    await service(t, { TEXT_EXPIRY: '2s' })
    const alice = await online(t, 'alice')
    t.equal(taken(await text('alice', USERS.dave.number, 'hello dave')), 202)
    const [notice] = await alice.waitForTexts(1)
    t.match(notice?.body, /^⚠ Not delivered to \+12025550104: no phone of theirs was online/)
    t.match(notice?.body, '“hello dave”', 'quoting the text')
    t.match(notice?.header('From'), `<sip:${USERS.dave.number}@`, 'from the number texted')
    const dave = await online(t, 'dave')
    // The notice went out after the text expired: by then dave's store is empty.
    const more = await text('alice', USERS.dave.number, 'second try')
    t.equal(taken(more), 202)
    t.same(
      (await dave.waitForTexts(1)).map((m) => m.body),
      ['second try'],
      'the expired text is gone',
    )
  })

  t.test("above a user's cap a text is refused, and the sender is told", async (t) => {
    await service(t, { TEXT_MAX_PER_USER: '2' })
    const alice = await online(t, 'alice')
    for (const body of ['one', 'two', 'three']) t.equal(taken(await text('alice', USERS.dave.number, body)), 202)
    const [notice] = await alice.waitForTexts(1)
    t.match(notice?.body, /^⚠ Not delivered to \+12025550104: .*too many texts waiting/)
    t.match(notice?.body, '“three”')
    const dave = await online(t, 'dave')
    await dave.waitForTexts(2)
    t.same(bodies(dave), ['one', 'two'], 'the oldest are kept')
  })

  t.test("above a user's byte cap a text is refused too", async (t) => {
    await service(t, { TEXT_MAX_BYTES_PER_USER: '1024' })
    const alice = await online(t, 'alice')
    const big = `${'x'.repeat(600)} one`
    t.equal(taken(await text('alice', USERS.dave.number, big)), 202)
    t.equal(taken(await text('alice', USERS.dave.number, `${'y'.repeat(600)} two`)), 202)
    const [notice] = await alice.waitForTexts(1)
    t.match(notice?.body, /too many texts waiting/)
    const dave = await online(t, 'dave')
    await dave.waitForTexts(1)
    t.same(bodies(dave), [big], 'the first is kept')
  })

  t.test('a store port already taken: the service says which, and does not start', async (t) => {
    const squatter = createServer(() => {})
    await new Promise<void>((r) => squatter.listen(pbx.storePort, '127.0.0.1', r))
    t.teardown(() => new Promise((r) => squatter.close(r)))
    const svc = textsService()
    const ctx = pbx.context(pbx.env({ TEXT_STORE_DIR: join(scratch, `store-${++stores}`) }))
    await t.rejects(svc.start(ctx), /listening for the dial plan on 127\.0\.0\.1:\d+ \(TEXT_STORE_PORT\): .*EADDRINUSE/)
  })

  /** The service in its own process, for restarts. Its stdout lines. */
  const child = async (t: Test, storeDir: string) => {
    const lines: string[] = []
    const proc = spawn(process.execPath, [SERVE], {
      env: { ...process.env, ...pbx.env({ TEXT_STORE_DIR: storeDir }), ASTERISK_BIN: tools.asterisk.bin },
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    createInterface({ input: proc.stdout }).on('line', (l) => lines.push(l))
    const exited = new Promise<number | null>((r) =>
      proc.once('exit', (code, signal) => r(code ?? (signal ? -1 : null))),
    )
    t.teardown(() => {
      proc.kill('SIGKILL')
      if (!t.passing()) t.comment(lines.join('\n'))
    })
    await waitFor(
      'the child service to log in to AMI',
      () => lines.some((l) => l.includes('contacts from Asterisk')),
      30_000,
    )
    return { proc, lines, exited }
  }

  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    t.test(`${signal} to the service while texts wait: nothing lost, nothing delivered twice`, async (t) => {
      const storeDir = join(scratch, `store-${++stores}`)
      const first = await child(t, storeDir)
      for (const body of ['a', 'b', 'c']) t.equal(taken(await text('alice', USERS.bob.number, body)), 202)
      await waitFor('three texts stored', () => first.lines.filter((l) => l.includes('text stored')).length === 3)
      first.proc.kill(signal)
      await first.exited
      const second = await child(t, storeDir)
      t.ok(
        second.lines.some((l) => l.includes('3 stored text(s) waiting')),
        'the restarted service has the three texts',
      )
      const bob = await online(t, 'bob')
      await bob.waitForTexts(3)
      await waitFor('the deliveries journaled', () => second.lines.some((l) => l.includes('sent 3 stored text(s)')))
      second.proc.kill(signal)
      await second.exited
      // Back again with bob's phone still online: what it has is not sent again.
      const third = await child(t, storeDir)
      t.equal(taken(await text('alice', USERS.bob.number, 'd')), 202)
      await bob.waitForTexts(4)
      t.same(bodies(bob), ['a', 'b', 'c', 'd'], 'each text once, in order')
      third.proc.kill('SIGTERM')
      t.equal(await third.exited, 0, 'SIGTERM stops it cleanly')
    })
  }
}
