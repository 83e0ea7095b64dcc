// Trunks that register with their ITSP, on a real Asterisk with the PrivateDial configuration:
// sipp plays the ITSPs' registrars (challenging, refreshing, refusing for a while) and their
// proxies, which challenge calls and texts too.
import t from 'tap'
import { join } from 'node:path'
import { health } from '../../src/asterisk/health.ts'
import { registrationsService } from '../../src/asterisk/registrations.ts'
import { createLogger } from '../../src/base/log.ts'
import { readSettings } from '../../src/config/settings.ts'
import { freePort, startTestPbx } from '../helpers/asterisk.ts'
import { digestAnswers, finalResponses, findTools, requests, runSipp, startSipp } from '../helpers/sipp.ts'

const tools = findTools()
if (typeof tools === 'string') t.plan(0, `skipped: ${tools}`)
else {
  const trunk = (name: string, port: number, extra = '') =>
    `[${name}](w_trunk)\nremote_hosts = 127.0.0.1:${port}\nsends_auth = yes\nsends_registrations = yes\n` +
    `outbound_auth/username = acct-${name}\noutbound_auth/password = pw-${name}\n${extra}\n`
  const ports = { md5: await freePort(), sha: await freePort(), back: await freePort(), down: await freePort() }
  // The registrars listen before Asterisk starts, so they get its first REGISTER. They answer only
  // what is sent to them: the target is never used.
  const registrar = (scenario: string, port: number, keys: Record<string, string> = {}) =>
    startSipp(tools.sipp, { scenario, target: '127.0.0.1:9', port, keys })
  const registrars = {
    md5: await registrar('uas-registrar.xml', ports.md5, { algorithm: 'MD5', expires: '20' }),
    sha: await registrar('uas-registrar.xml', ports.sha, { algorithm: 'SHA-256', expires: '20' }),
    back: await registrar('uas-registrar-refusing.xml', ports.back),
  }
  const frank = { user: 'frank', password: 'frank-pw-9k2j' }
  const pbx = await startTestPbx(tools.asterisk, {
    append: {
      'pjsip_endpoint.conf': [
        trunk('itsp:md5', ports.md5),
        trunk('itsp:sha', ports.sha),
        // Retries a second apart, not minutes, so the test need not wait.
        trunk('itsp:back', ports.back, 'registration/retry_interval = 1\nregistration/forbidden_retry_interval = 1'),
        // Nothing answers there.
        trunk('itsp:down', ports.down),
        '[frank](w_term_io)\nhint_exten = +12025550106\nendpoint/callerid = Frank <+12025550106>',
        `endpoint/set_var = TRUNK_ENDPOINT=itsp:sha\ninbound_auth/username = frank\ninbound_auth/password = ${frank.password}`,
      ].join('\n'),
    },
  })
  t.teardown(() => pbx.stop())

  t.test('a trunk registers through a digest challenge, MD5 or SHA-256, and refreshes the registration', async (t) => {
    for (const [name, algorithm] of [
      ['md5', 'MD5'],
      ['sha', 'SHA-256'],
    ] as const) {
      const r = await registrars[name].done
      t.equal(r.code, 0, `challenged, registered, challenged anew on the refresh, registered\n${r.summary}`)
      const answers = requests(r, 'REGISTER').filter((m) => m.header('Authorization'))
      t.equal(answers.length, 2, 'two answers to the challenge')
      for (const m of answers)
        t.ok(digestAnswers(m, `acct-itsp:${name}`, `pw-itsp:${name}`, algorithm), `a right ${algorithm} digest`)
    }
  })

  t.test('a trunk registers again once its ITSP takes it after refusing it (401, 403) for a while', async (t) => {
    const r = await registrars.back.done
    t.equal(r.code, 0, r.summary)
    t.same(
      r.messages.filter((m) => m.direction === 'sent').map((m) => m.status),
      [401, 401, 401, 403, 401, 200],
    )
  })

  t.test('`privatedial health` and the log say whether each registering trunk is registered', async (t) => {
    const h = await health({ bin: tools.asterisk.bin, confDir: join(pbx.dir, 'etc') })
    t.equal(h.ok, false, 'unhealthy while one is not')
    for (const name of ['md5', 'sha', 'back']) t.match(h.detail, `itsp:${name} registered`)
    t.match(h.detail, /itsp:down not registered \((Unregistered|Rejected)\)/)
    t.notMatch(h.detail, 'itsp:test', 'a trunk that does not register is not listed')

    const lines: string[] = []
    const wanted = [/INFO .*trunk registered trunk=itsp:back/, /WARN .*trunk not registered trunk=itsp:down status=/]
    let seen: () => void = () => {}
    const all = new Promise<void>((done) => (seen = done))
    const log = createLogger({
      component: 'registrations',
      write: (line) => {
        lines.push(line)
        if (wanted.every((w) => lines.some((l) => w.test(l)))) seen()
      },
    })
    const ready: (() => void)[] = []
    const service = registrationsService({ intervalMs: 60_000 })
    await service.start({
      settings: readSettings({}, { readFile: () => '' }).settings,
      confDir: join(pbx.dir, 'etc'),
      log,
      asterisk: { onLine: () => {}, onReady: (l) => ready.push(l), rx: pbx.rx, booted: () => true },
      signal: new AbortController().signal,
    })
    t.teardown(() => service.stop(Date.now() + 1000))
    for (const l of ready) l()
    await Promise.race([
      all,
      new Promise((_, fail) => setTimeout(() => fail(new Error(`log lines so far:\n${lines.join('\n')}`)), 30_000)),
    ])
    t.pass(lines.join('\n'))
  })

  t.test("calls and texts through the trunk answer the ITSP's challenges with its credentials", async (t) => {
    const port = await freePort()
    const phone = await runSipp(tools.sipp, { scenario: 'uac-register.xml', target: pbx.target, port, auth: frank })
    t.equal(finalResponses(phone, 'REGISTER').at(-1), 200, phone.summary)
    t.teardown(() =>
      runSipp(tools.sipp, {
        scenario: 'uac-register.xml',
        target: pbx.target,
        port,
        auth: frank,
        keys: { expires: '0' },
      }),
    )
    const keys = { from: 'frank', to: '+46701234567', body: 'hello' }

    const proxy = await registrar('uas-auth-answer.xml', ports.sha, { algorithm: 'SHA-256' })
    const call = await runSipp(tools.sipp, { scenario: 'uac-call.xml', target: pbx.target, port, auth: frank, keys })
    t.equal(finalResponses(call, 'INVITE').at(-1), 200, `the call is connected\n${call.summary}`)
    const invites = requests(await proxy.done, 'INVITE')
    t.equal(invites.length, 2, 'challenged (407), then answered')
    t.ok(digestAnswers(invites[1]!, 'acct-itsp:sha', 'pw-itsp:sha', 'SHA-256'), 'with the right digest')

    const inbox = await registrar('uas-auth-message.xml', ports.sha, { algorithm: 'SHA-256' })
    const text = await runSipp(tools.sipp, { scenario: 'uac-message.xml', target: pbx.target, port, auth: frank, keys })
    t.equal(finalResponses(text, 'MESSAGE').at(-1), 202, text.summary)
    const messages = requests(await inbox.done, 'MESSAGE')
    t.same(
      messages.map((m) => m.body),
      ['hello', 'hello'],
      'challenged (401), then taken',
    )
    t.ok(digestAnswers(messages[1]!, 'acct-itsp:sha', 'pw-itsp:sha', 'SHA-256'), 'with the right digest')
  })
}
