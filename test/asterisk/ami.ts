// The AMI client against a real Asterisk, on a manager.conf written as the texts service writes it.
import t from 'tap'
import { readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { formatAction, openAmi, parseMessages, type AmiMessage } from '../../src/asterisk/ami.ts'
import { newManagerAccount, writeManagerConf } from '../../src/asterisk/manager-conf.ts'
import { memoryLogger } from '../../src/base/log.ts'
import { findAsterisk, freePort, startTestPbx, USERS } from '../helpers/asterisk.ts'
import { startPhone } from '../helpers/phone.ts'
import { waitFor } from '../helpers/wait-for.ts'

t.test('messages: split at blank lines, keys and values on one line each', async (t) => {
  const { messages, rest } = parseMessages(
    'Response: Success\r\nActionID: 1\r\nMessage: a: b\r\n\r\nEvent: ContactStatus\r\nURI: sip:x@y\r\n\r\nEvent: Par',
  )
  t.same(messages, [
    { Response: 'Success', ActionID: '1', Message: 'a: b' },
    { Event: 'ContactStatus', URI: 'sip:x@y' },
  ])
  t.equal(rest, 'Event: Par', 'an unfinished message waits for the rest')
  t.equal(formatAction({ Action: 'Ping', ActionID: '7' }), 'Action: Ping\r\nActionID: 7\r\n\r\n')
  for (const [key, value] of [
    ['Action', 'Ping\r\nAction: Originate'],
    ['Variable', 'a=b\nc'],
    ['Bad: Key', 'x'],
  ] as const)
    t.throws(() => formatAction({ [key]: value }), RangeError, `refuses ${JSON.stringify(`${key}: ${value}`)}`)
})

t.test('a manager interface that does not answer is said so, and tried again', async (t) => {
  const log = memoryLogger('ami')
  const port = await freePort()
  const ami = openAmi({ host: '127.0.0.1', port, username: 'u', secret: 's', log, retryMs: { base: 10, max: 40 } })
  t.teardown(() => ami.close())
  await waitFor('the warning', () => log.lines.some((l) => l.includes('does not answer yet')))
  t.match(log.lines.join('\n'), `port=${port} error=ECONNREFUSED`)
  t.notOk(ami.loggedIn())
})

const asterisk = findAsterisk()
t.test('with a real Asterisk', { skip: typeof asterisk === 'string' ? asterisk : false }, async (t) => {
  if (typeof asterisk === 'string') return
  const pbx = await startTestPbx(asterisk)
  t.teardown(() => pbx.stop())
  const account = newManagerAccount(await freePort())
  const path = await writeManagerConf(join(pbx.dir, 'etc'), account)
  await pbx.rx('module reload manager')

  t.test('manager.conf: 127.0.0.1 only, the secret readable by owner and group only', async (t) => {
    const text = await readFile(path, 'utf8')
    t.match(text, /^bindaddr = 127\.0\.0\.1$/m)
    t.match(text, /^permit = 127\.0\.0\.1\/255\.255\.255\.255$/m)
    t.equal((await stat(path)).mode & 0o777, 0o640)
    t.not(newManagerAccount(1).secret, newManagerAccount(1).secret, 'a new secret every time')
  })

  t.test('logs in, matches responses to their actions, gathers lists and delivers events', async (t) => {
    const log = memoryLogger('ami')
    const ami = openAmi({ ...account, log, events: 'system' })
    t.teardown(() => ami.close())
    await ami.ready()
    const pings = await Promise.all(Array.from({ length: 20 }, () => ami.action({ Action: 'Ping' })))
    t.same(new Set(pings.map((p) => p.response.ActionID)).size, 20, 'twenty answers, each to its own action')
    t.ok(
      pings.every((p) => p.response.Ping === 'Pong'),
      'all pongs',
    )
    const { events } = await ami.action({ Action: 'PJSIPShowEndpoints' }, { list: true })
    t.ok(
      events.some((e) => e.ObjectName === 'bob'),
      'the list holds the users',
    )
    await t.rejects(ami.action({ Action: 'NoSuchAction' }), { name: 'AmiError' }, 'an error response rejects')
    const seen: AmiMessage[] = []
    ami.on('ContactStatus', (e) => seen.push(e))
    const phone = await startPhone({
      target: { host: '127.0.0.1', port: pbx.sipPort },
      user: 'bob',
      password: USERS.bob.password,
    })
    t.teardown(() => phone.close())
    t.equal(await phone.register(), 200)
    await waitFor('a ContactStatus event', () => seen.some((e) => e.URI === phone.uri))
    t.match(seen[0], { EndpointName: 'bob', URI: phone.uri })
    await phone.register(0)
    t.notOk(
      log.lines.some((l) => l.includes(account.secret)),
      'the secret is never logged',
    )
  })

  t.test('a wrong secret is refused and said so, without the secret', async (t) => {
    const log = memoryLogger('ami')
    const ami = openAmi({ ...account, secret: 'not-the-secret', log, retryMs: { base: 50, max: 50 } })
    t.teardown(() => ami.close())
    await waitFor('the refusal', () => log.lines.some((l) => l.includes('AMI login as privatedial failed')))
    t.notOk(ami.loggedIn())
    t.notOk(
      log.lines.some((l) => l.includes('not-the-secret')),
      'no secret in the log',
    )
    await t.rejects(ami.action({ Action: 'Ping' }), /not connected/)
  })

  t.test('logs in again when Asterisk restarts; close rejects what waits', async (t) => {
    const log = memoryLogger('ami')
    const ami = openAmi({ ...account, log, retryMs: { base: 50, max: 200 } })
    let logins = 0
    ami.onLogin(() => logins++)
    await ami.ready()
    // Asterisk goes away, and one comes back on the same manager port, as after a crash.
    await pbx.stop()
    const again = await startTestPbx(asterisk)
    t.teardown(() => again.stop())
    await writeManagerConf(join(again.dir, 'etc'), account)
    await again.rx('module reload manager')
    await waitFor('a second login', () => logins === 2, 30_000)
    t.ok(
      log.lines.some((l) => l.includes('AMI connection lost; reconnecting')),
      'the loss is logged',
    )
    t.equal((await ami.action({ Action: 'Ping' })).response.Ping, 'Pong', 'actions work again')
    await ami.close()
    await t.rejects(ami.ready(), /closed/)
    await t.rejects(ami.action({ Action: 'Ping' }), /closed/)
  })
})
