// The ban service against a real Asterisk in a network namespace of the test's own, with a
// scanner and a phone in namespaces of their own (sipp from their addresses, IPv4 and IPv6), in
// both enforcement modes: nftables in the PBX's namespace, and Asterisk's own refusal.
import t, { type Test } from 'tap'
import { execFile } from 'node:child_process'
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'
import { memoryLogger } from '../../src/base/log.ts'
import { setValue } from '../../src/config/conf.ts'
import { readSettings } from '../../src/config/settings.ts'
import { banService, type BanService } from '../../src/ban/service.ts'
import { ACL_FILE, aclAddresses } from '../../src/ban/acl.ts'
import { liftRequests, requestLift, saveBans } from '../../src/ban/store.ts'
import { SHIPPED_CONFIG, startTestPbx, USERS, type TestPbx } from '../helpers/asterisk.ts'
import { makeLab, netnsUnavailable, nftUnavailable, type Lab, type Peer } from '../helpers/netns.ts'
import { finalResponses, findTools, runSipp, type SippOptions } from '../helpers/sipp.ts'
import { waitFor } from '../helpers/wait-for.ts'

const CLI = resolve(import.meta.dirname, '../../bin/privatedial.js')
const exec = promisify(execFile)

const tools = findTools()
const noNetns = await netnsUnavailable()
const noNft = await nftUnavailable()

type Mode = 'nft' | 'asterisk'
interface Bed {
  lab: Lab
  pbx: TestPbx
  scanner: Peer
  phone: Peer
  env: Record<string, string>
  log: ReturnType<typeof memoryLogger>
  /** Starts a ban service on the PBX (again, for a restart). */
  start(): Promise<BanService>
  sipp(peer: Peer, family: 4 | 6, opts: Omit<SippOptions, 'target' | 'port' | 'netns'>): ReturnType<typeof runSipp>
  /** Resolves with the first log line matching, from line `from` on. */
  logged(pattern: RegExp, from?: number): Promise<string>
  /** Packets the nftables drop rule for `family` has counted. */
  dropped(family: 4 | 6): Promise<number>
}

async function bed(t: Test, mode: Mode, extraEnv: Record<string, string> = {}): Promise<Bed> {
  if (typeof tools === 'string') throw new Error(tools)
  const lab = await makeLab(['scanner', 'phone'])
  t.teardown(() => lab.remove())
  const listeners = new Set<(line: string) => void>()
  const pbx = await startTestPbx(
    { ...tools.asterisk, bin: await lab.wrap(tools.asterisk.bin) },
    {
      // Every address of its namespace, not the harness's loopback.
      edit: {
        'pjsip_transport.conf': (doc) => {
          setValue(doc, 't_wan', 'bind', '0.0.0.0:5060')
          setValue(doc, 't_wan6', 'bind', '[::]:5060')
        },
      },
      onLine: (line) => listeners.forEach((l) => l(line)),
    },
  )
  t.teardown(() => pbx.stop())
  const dir = await mkdtemp(join(tmpdir(), 'pd-bans-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const env = {
    ASTERISK_CONF_DIR: join(pbx.dir, 'etc'),
    BAN_MODE: mode,
    BAN_FILE: join(dir, 'bans.json'),
    BAN_THRESHOLD: '8',
    ...extraEnv,
  }
  const { settings, problems } = readSettings(env, { readFile: () => '' })
  if (problems.length) throw new Error(problems.join('\n'))
  const log = memoryLogger('bans', 'info')
  let port = 5100
  const logged = async (pattern: RegExp, from = 0) => {
    await waitFor(
      `a log line ${pattern}\n${log.lines.join('\n')}`,
      () => log.lines.slice(from).some((l) => pattern.test(l)),
      30_000,
    )
    return log.lines.slice(from).find((l) => pattern.test(l))!
  }
  return {
    lab,
    pbx,
    scanner: lab.peers.scanner!,
    phone: lab.peers.phone!,
    env,
    log,
    logged,
    async start() {
      const service = banService({ nft: ['ip', 'netns', 'exec', lab.pbx, 'nft'] })
      await service.start({
        settings,
        confDir: join(pbx.dir, 'etc'),
        log,
        asterisk: {
          onLine: (l) => void listeners.add(l),
          onReady: () => undefined,
          rx: (c) => pbx.rx(c),
          booted: () => true,
        },
        signal: new AbortController().signal,
      })
      t.teardown(() => service.stop(Date.now() + 5000))
      return service
    },
    sipp: (peer, family, opts) =>
      runSipp(tools.sipp, {
        target: family === 4 ? `${peer.pbxV4}:5060` : `[${peer.pbxV6}]:5060`,
        port: port++,
        netns: peer.netns,
        host: family === 4 ? peer.v4 : peer.v6,
        ...opts,
      }),
    async dropped(family) {
      const out = await lab.run(lab.pbx, ['nft', 'list', 'chain', 'inet', 'privatedial', 'input'])
      const rule = out.split('\n').find((l) => l.includes(family === 4 ? '@banned4' : '@banned6')) ?? ''
      return Number(/counter packets (\d+)/.exec(rule)?.[1] ?? NaN)
    },
  }
}

/** What a scanner does: guessed account names, then guessed passwords for a real one. */
async function scan(b: Bed, family: 4 | 6, users = ['admin', '100']) {
  for (const user of users)
    await b.sipp(b.scanner, family, { scenario: 'uac-register.xml', auth: { user, password: 'x' } })
  for (const password of ['123456', 'alice']) {
    const r = await b.sipp(b.scanner, family, { scenario: 'uac-register.xml', auth: { user: 'alice', password } })
    if (!finalResponses(r, 'REGISTER').includes(401)) throw new Error(`scanner was not challenged:\n${r.summary}`)
  }
}

const phoneWorks = async (t: Test, b: Bed, family: 4 | 6) => {
  const reg = await b.sipp(b.phone, family, {
    scenario: 'uac-register.xml',
    auth: { user: 'probe', password: USERS.probe.password },
  })
  t.equal(finalResponses(reg, 'REGISTER').at(-1), 200, `the phone registers over IPv${family}\n${reg.summary}`)
  if (family === 6) return
  const call = await b.sipp(b.phone, 4, {
    scenario: 'uac-call.xml',
    auth: { user: 'probe', password: USERS.probe.password },
    keys: { from: 'probe', to: USERS.alice.number },
  })
  t.ok(finalResponses(call, 'INVITE').includes(200), `the phone's call is answered\n${call.summary}`)
}

/** The scanner's next REGISTER: no answer at all (nft), or a 403 without a challenge (asterisk). */
async function refused(t: Test, b: Bed, mode: Mode, family: 4 | 6) {
  const before = mode === 'nft' ? await b.dropped(family) : 0
  const r = await b.sipp(b.scanner, family, {
    scenario: 'uac-register.xml',
    auth: { user: 'alice', password: 'qwerty' },
    timeout: mode === 'nft' ? '3s' : '30s',
  })
  const received = r.messages.filter((m) => m.direction === 'received')
  if (mode === 'nft') {
    t.same(received, [], `nothing answers the banned IPv${family} scanner\n${r.summary}`)
    t.ok((await b.dropped(family)) > before, 'its packets were dropped by our nftables rule')
  } else {
    t.same(finalResponses(r, 'REGISTER'), [403], `Asterisk refuses the banned IPv${family} scanner\n${r.summary}`)
  }
}

const answered = async (t: Test, b: Bed, family: 4 | 6, what: string) => {
  const r = await b.sipp(b.scanner, family, { scenario: 'uac-register.xml', auth: { user: 'nobody', password: 'x' } })
  t.equal(finalResponses(r, 'REGISTER')[0], 401, `${what}: the address is answered again\n${r.summary}`)
}

const cli = (env: Record<string, string>, ...args: string[]) =>
  exec(process.execPath, [CLI, ...args], { env: { ...process.env, ...env } }).then(
    (r) => ({ code: 0, out: r.stdout }),
    (err: { code: number; stdout: string; stderr: string }) => ({ code: err.code, out: err.stdout + err.stderr }),
  )

t.test('what a previous run left: an unreadable ban file, a pending lift, a stale ACL', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'pd-bans-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const confDir = join(dir, 'etc')
  await cp(SHIPPED_CONFIG, confDir, { recursive: true })
  const file = join(dir, 'bans.json')
  const start = async (env: Record<string, string>) => {
    const { settings } = readSettings({ BAN_FILE: file, BAN_MODE: 'asterisk', ...env }, { readFile: () => '' })
    const log = memoryLogger('bans', 'info')
    const service = banService()
    await service.start({
      settings,
      confDir,
      log,
      // Asterisk is not up: the service works on its files alone.
      asterisk: {
        onLine: () => undefined,
        onReady: () => undefined,
        rx: () => Promise.reject(new Error('not up')),
        booted: () => false,
      },
      signal: new AbortController().signal,
    })
    await service.settled()
    await service.stop(Date.now() + 5000)
    return log.lines.join('\n')
  }

  await writeFile(file, '{"version": 1, "bans": [')
  t.match(
    await start({}),
    new RegExp(`bans in ${file} can't be read .*moved it to ${file}\\.unreadable and started with none`),
  )
  t.equal(await readFile(`${file}.unreadable`, 'utf8'), '{"version": 1, "bans": [', 'kept for a look, not lost')

  const until = Date.now() + 600_000
  const ban = (address: string) => ({
    address,
    reason: 'wrong password for alice',
    count: 10,
    strike: 1,
    since: until - 1200_000,
    until,
  })
  await saveBans(file, {
    version: 1,
    mode: 'asterisk',
    savedAt: Date.now(),
    records: [],
    bans: [ban('203.0.113.5'), ban('2001:db8::7')],
  })
  await requestLift(file, '203.0.113.5')
  const lines = await start({})
  t.match(lines, /2 bans restored/)
  t.match(
    lines,
    /unbanned 203\.0\.113\.5: lifted \(privatedial bans delete\)/,
    'a lift asked while run was down is done at start',
  )
  t.same(await liftRequests(file), [], 'and the request is gone')
  t.same(await aclAddresses(confDir), ['2001:db8::7'], 'the ACL holds the ban still in force')

  t.match(await start({ BAN_MODE: 'off' }), /bans are off/)
  t.same(await aclAddresses(confDir), [], 'turned off, no ACL outlives it')
})

const skip = typeof tools === 'string' ? tools : noNetns
if (skip) t.test('the ban service on a real Asterisk in network namespaces', { skip: `skipped: ${skip}` }, () => {})
else {
  for (const mode of ['nft', 'asterisk'] as const) {
    t.test(
      `${mode}: a scanner is banned, the phone goes on, the ban survives a restart and is lifted on request`,
      { skip: mode === 'nft' && noNft ? `skipped: ${noNft}` : false },
      async (t) => {
        const b = await bed(t, mode)
        const first = await b.start()
        t.equal(first.mode(), mode, `enforced by ${mode}`)
        await phoneWorks(t, b, 4)

        await scan(b, 4)
        const line = await b.logged(/banned 198\.18\.1\.2 for 20 min: wrong password for alice/)
        t.match(line, /failures=8 strike=1/, 'one line, with the count and which ban it is')
        await first.settled()
        await refused(t, b, mode, 4)
        await phoneWorks(t, b, 4)
        t.equal(b.log.lines.filter((l) => /\bbanned 198\.18\.1\.2/.test(l)).length, 1, 'one log line per ban')
        // What Asterisk prints per attempt stays off run's log (run asks quiet()); the rest stays on.
        const printed = b.pbx.log().split('\n')
        const perAttempt = printed.filter((l) => /SECURITY\[|198\.18\.1\.2.*ACL|ACL.*198\.18\.1\.2/.test(l))
        t.ok(perAttempt.length >= (mode === 'asterisk' ? 3 : 1), 'Asterisk printed lines per attempt')
        t.same(
          perAttempt.filter((l) => !first.quiet(l)),
          [],
          'security events and refusals of the banned address are all quiet',
        )
        t.notOk(first.quiet(printed.find((l) => /Added contact/.test(l))!), "the phone's registration is not")
        t.notOk(
          first.quiet(
            '[2026-12-01 09:01:04.269] WARNING[27398]: res_pjsip_acl.c:158 apply_acl: Incoming SIP message from 198.51.100.9:5060 did not pass ACL test',
          ),
          'nor a refusal by an ACL of your own',
        )

        // A firewall reload elsewhere in the container flushes every table, ours with it: the
        // next ban makes it anew, with every ban in force.
        if (mode === 'nft') await b.lab.run(b.lab.pbx, ['nft', 'flush', 'ruleset'])
        await scan(b, 6)
        await b.logged(/banned 2001:db8:77:1::2 for 20 min/)
        await first.settled()
        await refused(t, b, mode, 6)
        await phoneWorks(t, b, 6)
        if (mode === 'nft') {
          t.ok(
            b.log.lines.some((l) => /making table inet privatedial anew/.test(l)),
            'the flush is noticed',
          )
          await refused(t, b, mode, 4)
        }

        const listed = await cli(b.env, 'bans')
        t.equal(listed.code, 0)
        t.match(listed.out, /198\.18\.1\.2\s+\S+Z\s+8\s+1st\s+wrong password for alice/, '`privatedial bans` lists it')
        t.match(listed.out, /2001:db8:77:1::2/)
        if (mode === 'asterisk')
          t.match(await readFile(join(b.pbx.dir, 'etc', ACL_FILE), 'utf8'), /deny = 198\.18\.1\.2/)

        // A restart: the first service stops (its nftables table goes), a second one starts.
        await first.stop(Date.now() + 5000)
        if (mode === 'nft')
          t.notMatch(await b.lab.run(b.lab.pbx, ['nft', 'list', 'tables']), /privatedial/, 'stop removes our table')
        const from = b.log.lines.length
        const second = await b.start()
        t.match(await b.logged(/bans restored/, from), /2 bans restored .*198\.18\.1\.2/)
        await refused(t, b, mode, 4)

        const lift = await cli(b.env, 'bans', 'delete', '198.18.1.2')
        t.equal(lift.code, 0, lift.out)
        t.match(lift.out, /lifted the ban on 198\.18\.1\.2/)
        t.ok(
          b.log.lines.some((l) => /unbanned 198\.18\.1\.2: lifted/.test(l)),
          'the lift is logged',
        )
        await answered(t, b, 4, 'right after `bans delete`')
        await refused(t, b, mode, 6)
        const again = await cli(b.env, 'bans', 'delete', '198.18.1.2')
        t.equal(again.code, 64, 'lifting what is not banned is a usage error')
        t.match(again.out, /198\.18\.1\.2 is not banned/)
        await second.settled()
      },
    )
  }

  t.test('a user who mistypes twice and then gets it right is never banned', async (t) => {
    const b = await bed(t, 'asterisk', { BAN_THRESHOLD: '3' })
    const service = await b.start()
    for (let round = 0; round < 3; round++) {
      for (const password of ['prob-pw-c3v4', 'probe-pw-c3v']) {
        const r = await b.sipp(b.phone, 4, { scenario: 'uac-register.xml', auth: { user: 'probe', password } })
        t.equal(finalResponses(r, 'REGISTER').at(-1), 401, 'a typo is refused')
      }
      const r = await b.sipp(b.phone, 4, {
        scenario: 'uac-register.xml',
        auth: { user: 'probe', password: USERS.probe.password },
      })
      t.equal(finalResponses(r, 'REGISTER').at(-1), 200, `round ${round + 1}: the right password registers`)
    }
    await service.settled()
    t.notOk(
      b.log.lines.some((l) => / bans: banned /.test(l)),
      `six typos in all, never banned\n${b.log.lines.join('\n')}`,
    )
    t.match((await cli(b.env, 'bans')).out, /no active bans/)
    // The typos were counted: three in a row, with no login between, do ban.
    for (const password of ['probe', 'probe1', 'probe2'])
      await b.sipp(b.phone, 4, { scenario: 'uac-register.xml', auth: { user: 'probe', password } })
    await b.logged(/banned 198\.18\.2\.2 for 20 min: wrong password for probe/)
  })

  t.test('a ban ends on time, and a repeat offender is banned longer', async (t) => {
    const b = await bed(t, noNft ? 'asterisk' : 'nft', { BAN_TIME_SECONDS: '2', BAN_REPEAT_FACTOR: '3' })
    await b.start()
    await scan(b, 4)
    const firstBan = await b.logged(/banned 198\.18\.1\.2 for 2 s/)
    const until = Date.parse(/until=(\S+)/.exec(firstBan)![1]!)
    const from = b.log.lines.length
    await b.logged(/unbanned 198\.18\.1\.2: ban ended/, from)
    t.ok(Date.now() >= until, 'not before its end')
    await answered(t, b, 4, 'after the ban')
    // That counted 3 (an unknown account costs a REGISTER and its retry with credentials: 3
    // events); 3 more and 2 wrong passwords make the 8.
    await scan(b, 4, ['admin'])
    const second = await b.logged(/banned 198\.18\.1\.2 for 6 s/, from)
    t.match(second, /strike=2/, 'the second ban is the first times BAN_REPEAT_FACTOR')
  })

  t.test('an address on BAN_ALLOW is never banned', async (t) => {
    const b = await bed(t, 'asterisk', { BAN_ALLOW: '198.18.1.2' })
    await b.start()
    await scan(b, 4)
    await scan(b, 6)
    // The IPv6 scan came after the IPv4 one, and the service takes events in order.
    await b.logged(/banned 2001:db8:77:1::2 /)
    t.notOk(
      b.log.lines.some((l) => /banned 198\.18\.1\.2/.test(l)),
      'the same attempts from the allowed address did not ban it',
    )
    await answered(t, b, 4, 'the allowed address')
  })
}
