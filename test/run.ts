// `privatedial run` as the container runs it, against a real Asterisk: readiness, health, live
// reload of pjsip_endpoint.conf, SIGHUP, crash restart, and a stop that leaves nothing behind.
import t, { type Test } from 'tap'
import { execFileSync } from 'node:child_process'
import { readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import { createServer, type AddressInfo } from 'node:net'
import { join } from 'node:path'
import { execa, type ResultPromise } from 'execa'
import { setValue } from '../src/config/conf.ts'
import {
  findAsterisk,
  freePort,
  prepareTestPbx,
  USERS,
  type AsteriskOptions,
  type TestPbxFiles,
} from './helpers/asterisk.ts'
import { startPhone } from './helpers/phone.ts'
import { waitFor as until } from './helpers/wait-for.ts'
import { finalResponses, findSipp, runSipp, startSipp } from './helpers/sipp.ts'

const asterisk = findAsterisk()
const sipp = findSipp()
const cli = new URL('../bin/privatedial.js', import.meta.url).pathname

const stillRunning = (pids: number[]) =>
  pids.filter((p) => {
    try {
      process.kill(p, 0)
      return true
    } catch {
      return false
    }
  })

/** Pids of the processes whose parent is `pid`, recursively. */
function descendants(pid: number): number[] {
  const out = execFileSync('ps', ['-e', '-o', 'pid=,ppid='], { encoding: 'utf8' })
  const pairs = out
    .trim()
    .split('\n')
    .map((l) => l.trim().split(/\s+/).map(Number) as [number, number])
  const kids = pairs.filter(([, ppid]) => ppid === pid).map(([p]) => p)
  return kids.flatMap((k) => [k, ...descendants(k)])
}

if (typeof asterisk === 'string') t.plan(0, `skipped: ${asterisk}`)
else if (typeof sipp === 'string') t.plan(0, `skipped: ${sipp}`)
else {
  const conf = await prepareTestPbx(asterisk)
  t.teardown(() => conf.remove())
  /** What run gets to use a test PBX's config: its Asterisk as root, a short drain, every log line. */
  const runEnv = (pbx: TestPbxFiles, extra: Record<string, string> = {}) => ({
    ...process.env,
    ASTERISK_CONF_DIR: pbx.etc,
    ASTERISK_BIN: asterisk.bin,
    ASTERISK_USER: 'root',
    TLS_CERT_FILE: pbx.certFile,
    TLS_KEY_FILE: pbx.keyFile,
    MINIVM_SPOOL_DIR: join(pbx.dir, 'outbox'),
    TEXT_STORE_DIR: join(pbx.dir, 'texts'),
    AMI_PORT: String(pbx.amiPort),
    STOP_GRACE_SECONDS: '3',
    LOG_LEVEL: 'debug',
    // Never nftables in the machine's own namespace, never the machine's /var/lib.
    BAN_MODE: 'asterisk',
    BAN_FILE: join(pbx.dir, 'bans.json'),
    ...extra,
  })
  /** `privatedial run` on a test PBX, killed at the end of test `owner` if still there. */
  const startRun = (owner: Test, pbx: TestPbxFiles, extra: Record<string, string> = {}) => {
    let output = ''
    const waiters = new Set<() => void>()
    const proc: ResultPromise = execa(process.execPath, [cli, 'run'], {
      env: runEnv(pbx, extra),
      extendEnv: false,
      reject: false,
      all: true,
      buffer: false,
      forceKillAfterDelay: false,
    })
    proc.all!.on('data', (c: Buffer) => {
      output += c.toString()
      for (const w of waiters) w()
    })
    // A SIGKILLed run cannot stop its Asterisk (in the image tini would): kill the whole tree, or
    // an Asterisk would outlive the test, holding its ports and a core of the machine.
    owner.teardown(() => {
      if (proc.pid !== undefined) for (const pid of descendants(proc.pid)) process.kill(pid, 'SIGKILL')
      proc.kill('SIGKILL')
    })
    /** Resolves with the first match in run's output after `from`, or fails after a generous bound. */
    const waitFor = (re: RegExp, from = 0, ms = 30_000) =>
      new Promise<RegExpMatchArray>((resolve, reject) => {
        const check = () => {
          const m = output.slice(from).match(re)
          if (m) done(() => resolve(m))
        }
        const timer = setTimeout(
          () => done(() => reject(new Error(`run did not print ${re} within ${ms} ms:\n${output.slice(from)}`))),
          ms,
        )
        const done = (f: () => void) => {
          clearTimeout(timer)
          waiters.delete(check)
          f()
        }
        waiters.add(check)
        check()
      })
    return { proc, output: () => output, waitFor }
  }
  /** `privatedial run` on a PBX config of its own, removed at the end of test `owner`. */
  const startFreshRun = async (owner: Test, extra: Record<string, string> = {}, opts: AsteriskOptions = {}) => {
    const pbx = await prepareTestPbx(asterisk, opts)
    owner.teardown(() => pbx.remove())
    return { pbx, ...startRun(owner, pbx, extra) }
  }
  /** Dave's phone (a phone that takes texts), registered at `pbx`, closed at the end of `owner`. */
  const davesPhone = async (owner: Test, pbx: TestPbxFiles) => {
    const dave = await startPhone({
      target: { host: '127.0.0.1', port: pbx.sipPort },
      user: 'dave',
      password: USERS.dave.password,
    })
    owner.teardown(() => dave.close())
    owner.equal(await dave.register(), 200, "dave's phone registers")
    return dave
  }
  const env = runEnv(conf)
  const main = startRun(t, conf)
  const { proc, waitFor } = main
  const target = `127.0.0.1:${conf.sipPort}`
  /** The final answer to a phone's REGISTER at `pbx`, after any 401 challenge: 200 when registered. */
  const registerAt = async (pbx: TestPbxFiles, user: string, password: string, port?: number) => {
    const r = await runSipp(sipp.bin, {
      scenario: 'uac-register.xml',
      target: `127.0.0.1:${pbx.sipPort}`,
      port: port ?? (await freePort()),
      auth: { user, password },
    })
    return finalResponses(r, 'REGISTER').at(-1)
  }
  const register = (user: string, password: string, port?: number) => registerAt(conf, user, password, port)
  /** Waits until Asterisk counts `n` active calls (the callee answered). */
  const callsUp = async (n: number) => {
    for (const deadline = Date.now() + 15_000; Date.now() < deadline; await new Promise((r) => setTimeout(r, 100))) {
      const r = await execa(asterisk.bin, ['-C', join(conf.etc, 'asterisk.conf'), '-rx', 'core show channels count'], {
        reject: false,
      })
      if (new RegExp(`^${n} active call`, 'm').test(r.stdout)) return
    }
    throw new Error(`no ${n} active call(s) within 15 s`)
  }
  /** Alice calls bob's registered phone, which answers; alice hangs up after 6 s. Resolves once the call is up. */
  const aliceCallsBob = async (t: Test) => {
    const bobPort = await freePort()
    t.equal(await register('bob', USERS.bob.password, bobPort), 200, "bob's phone registers")
    const bob = await startSipp(sipp.bin, { scenario: 'uas-answer-wait.xml', target, port: bobPort })
    const alice = await startSipp(sipp.bin, {
      scenario: 'uac-call-6s.xml',
      target,
      port: await freePort(),
      auth: { user: 'alice', password: USERS.alice.password },
      keys: { from: 'alice', to: USERS.bob.number },
    })
    await callsUp(1)
    return { alice, bob }
  }
  const health = () => execa(process.execPath, [cli, 'health'], { env, extendEnv: false, reject: false })

  t.test('run starts Asterisk and says when it is ready', async (t) => {
    await waitFor(/PrivateDial ready \d+ ms after start/)
    t.match(main.output(), /Asterisk fully booted in \d+ ms/)
    t.match(main.output(), /INFO  asterisk: /, "Asterisk's own log lines reach run's output, prefixed")
    t.notMatch(main.output(), /ERROR  ?asterisk: /, 'Asterisk logged no error at boot')
  })

  t.test('health is healthy while Asterisk runs', async (t) => {
    const h = await health()
    t.equal(h.exitCode, 0, h.stdout)
    t.match(h.stdout, /^healthy: Asterisk answers; transports up: .*udp/m)
  })

  t.test('bans: how they are enforced is logged; the attempts reach the ban service, not the log', async (t) => {
    t.match(main.output(), /bans: bans are enforced by Asterisk: PJSIP answers a banned address with 403/)
    const from = main.output().length
    t.equal(await register('alice', 'not-her-password'), 401, 'a wrong password is refused')
    // The ban service read the event (debug), and loopback is never banned.
    await waitFor(/bans: 127\.0\.0\.1 is never banned; not counting: wrong password for alice/, from)
    await waitFor(/Failed to authenticate/, from)
    t.pass("Asterisk's notice of the failure is still on run's log")
    t.notMatch(main.output().slice(from), /SECURITY\[/, "Asterisk's security events stay off it")
  })

  t.test('a trunk added to pjsip_endpoint.conf gets the twin its texts leave through; removed, loses it', async (t) => {
    const file = join(conf.etc, 'pjsip_endpoint.conf')
    const original = readFileSync(file, 'utf8')
    const twin = () =>
      execa(asterisk.bin, ['-C', join(conf.etc, 'asterisk.conf'), '-rx', 'pjsip show endpoint text-itsp-new'], {
        reject: false,
      })
    const from = main.output().length
    writeFileSync(file, `${original}\n[itsp:new](w_trunk)\nremote_hosts = 127.0.0.1:${await freePort()}\n`)
    await waitFor(/reloaded after a change to pjsip_endpoint\.conf/, from)
    t.match(main.output().slice(from), /wrote pjsip_text_trunks\.conf .*twins=text-itsp-test,text-itsp-new/)
    t.match((await twin()).stdout, /Aor:\s+itsp:new\b/, "Asterisk has the twin, on the trunk's AOR")
    const from2 = main.output().length
    writeFileSync(file, original)
    await waitFor(/reloaded after a change to pjsip_endpoint\.conf/, from2)
    t.match((await twin()).stdout, /Unable to find object text-itsp-new/)
  })

  t.test("a user added to pjsip_endpoint.conf can register after the save; removed, can't", async (t) => {
    const file = join(conf.etc, 'pjsip_endpoint.conf')
    const original = readFileSync(file, 'utf8')
    t.not(await register('frank', 'frank-pw-1a2b'), 200, 'frank is unknown at first')
    const from = main.output().length
    writeFileSync(
      file,
      `${original}\n[frank](w_term:test)\nhint_exten = +12025550106\ninbound_auth/username = frank\ninbound_auth/password = frank-pw-1a2b\n`,
    )
    await waitFor(/reloaded after a change to pjsip_endpoint\.conf command="module reload res_pjsip\.so" ms=\d+/, from)
    t.equal(await register('frank', 'frank-pw-1a2b'), 200, 'frank registers')
    const from2 = main.output().length
    writeFileSync(file, original)
    await waitFor(/reloaded after a change to pjsip_endpoint\.conf/, from2)
    t.not(await register('frank', 'frank-pw-1a2b'), 200, 'frank is gone again')
  })

  t.test('a broken endpoint file is not loaded; Asterisk keeps the users it has', async (t) => {
    const file = join(conf.etc, 'pjsip_endpoint.conf')
    const original = readFileSync(file, 'utf8')
    const from = main.output().length
    writeFileSync(file, `${original}\n[grace](w_term:nope)\ninbound_auth/username = grace\n`)
    await waitFor(/not reloading after a change to pjsip_endpoint\.conf/, from)
    t.match(
      main.output().slice(from),
      /pjsip_endpoint\.conf:\d+: \[grace\] inherits template `w_term:nope`, which is not defined/,
    )
    t.equal(await register('alice', USERS.alice.password), 200, 'alice still registers')
    writeFileSync(file, original)
    await waitFor(/reloaded after a change to pjsip_endpoint\.conf/, from)
  })

  t.test('a call in progress survives a reload', async (t) => {
    const { alice, bob } = await aliceCallsBob(t)
    const file = join(conf.etc, 'pjsip_endpoint.conf')
    const from = main.output().length
    writeFileSync(
      file,
      readFileSync(file, 'utf8') +
        '\n; a harmless edit\n[x-reload](w_term:test)\ninbound_auth/username = x-reload\ninbound_auth/password = x-pw-0000\n',
    )
    await waitFor(/reloaded after a change to pjsip_endpoint\.conf/, from)
    const [a, b] = await Promise.all([alice.done, bob.done])
    t.equal(a.code, 0, `the caller's call went to its normal end\n${a.summary}`)
    t.same(
      finalResponses(a, 'BYE'),
      [200],
      'the caller hung up after the reload and was answered: the call was still up',
    )
    t.equal(b.code, 0, `the callee saw the call to its end\n${b.summary}\n${b.errors}`)
  })

  t.test('SIGHUP applies the environment again and reloads without a restart', async (t) => {
    const pid = execFileSync('pgrep', ['-f', '-n', `${conf.etc}/asterisk.conf`], { encoding: 'utf8' }).trim()
    const from = main.output().length
    proc.kill('SIGHUP')
    await waitFor(/reloaded after SIGHUP command="core reload"/, from)
    t.equal(
      execFileSync('pgrep', ['-f', '-n', `${conf.etc}/asterisk.conf`], { encoding: 'utf8' }).trim(),
      pid,
      'same Asterisk process',
    )
  })

  t.test('a crashed Asterisk is restarted', async (t) => {
    const pid = Number(execFileSync('pgrep', ['-f', '-n', `${conf.etc}/asterisk.conf`], { encoding: 'utf8' }).trim())
    const from = main.output().length
    process.kill(pid, 'SIGKILL')
    await waitFor(/Asterisk exited unexpectedly \(signal SIGKILL\) after \d+ ms; restarting in 1000 ms/, from)
    await waitFor(/Asterisk fully booted in \d+ ms/, from)
    t.equal((await health()).exitCode, 0, 'healthy again')
  })

  t.test('SIGTERM with a call up drains, stops Asterisk and leaves no process', async (t) => {
    const { alice, bob } = await aliceCallsBob(t)
    const kids = descendants(proc.pid!)
    t.ok(kids.length >= 1, 'run has Asterisk as a child')
    const from = main.output().length
    proc.kill('SIGTERM')
    await waitFor(/stopping Asterisk \(SIGTERM\)/, from)
    // While the call in progress may finish, a new one is turned away.
    const late = await runSipp(sipp.bin, {
      scenario: 'uac-call.xml',
      target,
      port: await freePort(),
      auth: { user: 'carol', password: USERS.carol.password },
      keys: { from: 'carol', to: USERS.bob.number },
    })
    const answer = finalResponses(late, 'INVITE').at(-1)
    t.ok(answer !== undefined && answer >= 400, `a new call during the drain is refused (${answer})\n${late.summary}`)
    const r = await proc
    t.equal(r.exitCode, 0, 'run exits 0')
    t.match(main.output().slice(from), /received SIGTERM; shutting down/)
    t.match(main.output().slice(from), /stopping Asterisk \(SIGTERM\): new calls refused, calls in progress have 3 s/)
    t.match(main.output().slice(from), /calls still up after 3 s; stopping Asterisk now/)
    t.match(main.output().slice(from), /Asterisk stopped/)
    t.same(stillRunning(kids), [], 'no process of run is left')
    alice.stop()
    bob.stop()
  })

  t.test('a user added while Asterisk boots can register once it is up, and no reload fails', async (t) => {
    const { pbx: booting, proc: run, output, waitFor } = await startFreshRun(t)
    // The watcher is up well before Asterisk has booted (it takes the better part of a second).
    await waitFor(/watching .*pjsip_endpoint\.conf for changes/)
    const file = join(booting.etc, 'pjsip_endpoint.conf')
    writeFileSync(
      file,
      `${readFileSync(file, 'utf8')}\n[gina](w_term:test)\nhint_exten = +12025550107\ninbound_auth/username = gina\ninbound_auth/password = gina-pw-3c4d\n`,
    )
    await waitFor(/PrivateDial ready/)
    await waitFor(/reloaded after a change to pjsip_endpoint\.conf|reload after a change .* failed/)
    t.comment(
      /still booting/.test(output())
        ? 'the change came during the boot'
        : 'Asterisk had booted before the change was seen',
    )
    t.equal(await registerAt(booting, 'gina', 'gina-pw-3c4d'), 200, 'gina registers')
    t.notMatch(output(), /reload after a change .* failed/, 'no reload was tried before Asterisk could take it')
    run.kill('SIGTERM')
    t.equal((await run).exitCode, 0)
  })

  t.test(
    'SIGTERM the moment Asterisk is spawned, mid start-up, still ends with exit 0 and no process left',
    async (t) => {
      const { proc: run, output, waitFor } = await startFreshRun(t)
      await waitFor(/Asterisk started/)
      const kids = descendants(run.pid!)
      run.kill('SIGTERM')
      t.ok(kids.length >= 1, 'Asterisk was running when the signal came')
      const r = await run
      t.equal(r.exitCode, 0, `run exits 0\n${output()}`)
      t.match(output(), /received SIGTERM; shutting down/)
      t.match(output(), /stopping Asterisk \(SIGTERM\) before it finished booting/)
      t.notMatch(output(), /PrivateDial ready/, 'a PBX being stopped is never reported ready')
      t.notMatch(
        output().slice(output().indexOf('received SIGTERM')),
        /watching .* for changes/,
        'nothing claims to start watching after the stop',
      )
      t.same(stillRunning(kids), [], 'no process of run is left')
    },
  )

  t.test('SIGTERM while a certificate order waits on a CA that never answers still drains and exits 0', async (t) => {
    // A CA that takes the connection and then says nothing, as one behind a dead proxy does.
    const silent = createServer(() => {})
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r))
    t.teardown(() => new Promise((r) => silent.close(r)))
    silent.on('connection', (socket) => t.teardown(() => void socket.destroy()))
    const caPort = (silent.address() as AddressInfo).port
    const {
      proc: run,
      output,
      waitFor,
    } = await startFreshRun(t, {
      TLS_MODE: 'acme',
      ACME_DIRECTORY: `https://127.0.0.1:${caPort}/dir`,
      ACME_DOMAINS: 'pbx.example.com',
      ACME_EMAIL: 'admin@example.com',
    })
    await Promise.all([waitFor(/PrivateDial ready/), waitFor(/ordering certificate/)])
    const kids = descendants(run.pid!)
    run.kill('SIGTERM')
    // Bounded well past the 3 s grace: a run that waits for the order never gets there.
    const bound = setTimeout(() => void run.kill('SIGKILL'), 20_000)
    const r = await run
    clearTimeout(bound)
    t.equal(r.exitCode, 0, `run exits 0 on its own\n${output().slice(output().indexOf('received SIGTERM'))}`)
    t.match(output(), /Asterisk stopped/)
    t.same(stillRunning(kids), [], 'no process of run is left')
  })

  t.test('a check that throws while Asterisk boots is a logged problem; run and its calls go on', async (t) => {
    const { pbx: looping, proc: run, output, waitFor } = await startFreshRun(t)
    await waitFor(/watching .*pjsip_endpoint\.conf for changes/)
    // An include that is a symlink loop: reading it fails with ELOOP, so the check itself throws.
    const loop = join(looping.dir, 'loop.conf')
    symlinkSync(loop, loop)
    const file = join(looping.etc, 'pjsip_endpoint.conf')
    const original = readFileSync(file, 'utf8')
    writeFileSync(file, `${original}\n#include ${loop}\n`)
    await waitFor(/PrivateDial ready/)
    await waitFor(/checking the config after a change to pjsip_endpoint\.conf failed: .*ELOOP/)
    await waitFor(/not reloading after a change to pjsip_endpoint\.conf: Asterisk keeps its current configuration/)
    t.equal(run.exitCode, null, 'run is still running')
    t.equal(await registerAt(looping, 'alice', USERS.alice.password), 200, 'alice still registers')
    t.match(
      execFileSync('ps', ['-o', 'args=', '-p', String(run.pid)], { encoding: 'utf8' }),
      /^privatedial run/,
      'ps shows what the process is',
    )
    const from = output().length
    writeFileSync(file, original)
    await waitFor(/reloaded after a change to pjsip_endpoint\.conf/, from)
    run.kill('SIGTERM')
    t.equal((await run).exitCode, 0)
  })

  t.test(
    'a text for a user whose phones are offline waits, is listed, and reaches the phone that registers',
    async (t) => {
      const pbx = await prepareTestPbx(asterisk)
      t.teardown(() => pbx.remove())
      const { proc: run, output, waitFor } = startRun(t, pbx)
      await waitFor(/PrivateDial ready/)
      await waitFor(/texts: contacts from Asterisk/)
      const from = output().length
      const sent = await runSipp(sipp.bin, {
        scenario: 'uac-message.xml',
        target: `127.0.0.1:${pbx.sipPort}`,
        port: await freePort(),
        auth: { user: 'alice', password: USERS.alice.password },
        keys: { from: 'alice', to: USERS.dave.number, body: 'call me 📞' },
      })
      t.equal(finalResponses(sent, 'MESSAGE').at(-1), 202, 'alice texts dave, who has no phone online')
      await waitFor(/texts: text stored for the phones of a user user=dave/, from)
      const listed = await execa(process.execPath, [cli, 'texts'], {
        env: runEnv(pbx),
        extendEnv: false,
        reject: false,
      })
      t.match(listed.stdout, /^dave\s+1\s+1\s/m, 'privatedial texts lists it')
      t.notOk(listed.stdout.includes('call me'), 'without its body')
      const dave = await davesPhone(t, pbx)
      const [m] = await dave.waitForTexts(1)
      t.equal(m?.body, 'call me 📞')
      t.match(m?.header('From'), `<sip:${USERS.alice.number}@`, "from alice's number")
      await dave.register(0)
      run.kill('SIGTERM')
      t.equal((await run).exitCode, 0)
    },
  )

  for (const signal of ['SIGTERM', 'SIGKILL'] as const) {
    t.test(`run restarted after ${signal} while a text waits: it arrives, once`, async (t) => {
      const pbx = await prepareTestPbx(asterisk)
      t.teardown(() => pbx.remove())
      const sipTarget = `127.0.0.1:${pbx.sipPort}`
      const textDave = async (body: string) => {
        const r = await runSipp(sipp.bin, {
          scenario: 'uac-message.xml',
          target: sipTarget,
          port: await freePort(),
          auth: { user: 'alice', password: USERS.alice.password },
          keys: { from: 'alice', to: USERS.dave.number, body },
        })
        t.equal(finalResponses(r, 'MESSAGE').at(-1), 202, `alice texts dave: ${body}`)
      }
      const up = async () => {
        const r = startRun(t, pbx)
        t.teardown(() => {
          if (!t.passing()) t.comment(r.output().slice(-4000))
        })
        await r.waitFor(/PrivateDial ready/)
        await r.waitFor(/texts: contacts from Asterisk/)
        return r
      }
      const first = await up()
      const [, pid] = await first.waitFor(/Asterisk started pid=(\d+)/)
      await textDave('kept across a restart')
      await first.waitFor(/texts: text stored for the phones of a user user=dave/)
      first.proc.kill(signal)
      await first.proc
      // A killed run leaves its Asterisk behind (tini would end the container): end it too.
      if (signal === 'SIGKILL') {
        process.kill(Number(pid), 'SIGKILL')
        await until('the old Asterisk to be gone', () => stillRunning([Number(pid)]).length === 0)
      }
      const second = await up()
      t.match(second.output(), /1 stored text\(s\) waiting/, 'the restarted run has the text')
      const dave = await davesPhone(t, pbx)
      await dave.waitForTexts(1)
      await second.waitFor(/texts: sent 1 stored text/)
      second.proc.kill('SIGTERM')
      t.equal((await second.proc).exitCode, 0)
      // Back with dave's phone still registered: what it has is not sent again.
      const third = await up()
      await textDave('after')
      await dave.waitForTexts(2)
      t.same(
        dave.texts.map((m) => m.body),
        ['kept across a restart', 'after'],
        'each text once, in order',
      )
      await dave.register(0)
      third.proc.kill('SIGTERM')
      t.equal((await third.proc).exitCode, 0)
    })
  }

  t.test('a service that cannot start is logged and the PBX runs on without it', async (t) => {
    const taken = createServer(() => {})
    await new Promise<void>((r) => taken.listen(0, '0.0.0.0', r))
    t.teardown(() => new Promise((r) => taken.close(r)))
    const {
      pbx: busy,
      proc: run,
      output,
      waitFor,
    } = await startFreshRun(t, {
      WEBSMS_PORT: String((taken.address() as AddressInfo).port),
    })
    await waitFor(/PrivateDial ready/)
    t.match(output(), /ERROR websms: could not start; the PBX runs on without it: .*EADDRINUSE/)
    t.equal(await registerAt(busy, 'alice', USERS.alice.password), 200, 'phones register')
    run.kill('SIGTERM')
    t.equal((await run).exitCode, 0)
  })

  t.test('on a host where the IPv6 transports cannot bind, Asterisk runs on IPv4 and says why once', async (t) => {
    // A unique local address no interface here has: its bind fails as [::] does without IPv6.
    const absent = 'fd00:dead:beef::1'
    const {
      pbx: v4only,
      proc: run,
      output,
      waitFor,
    } = await startFreshRun(
      t,
      {},
      {
        edit: {
          'pjsip_transport.conf': (doc) => {
            setValue(doc, 't_wan6', 'bind', `[${absent}]:5060`)
            setValue(doc, 'tls6', 'bind', `[${absent}]:5061`)
          },
        },
      },
    )
    await waitFor(/PrivateDial ready/)
    t.match(
      output(),
      `IPv6 is not available on this host: binding [${absent}] (EADDRNOTAVAIL) failed, so transports udp6, tcp6, tls6 stay down and phones reach the PBX over IPv4 only`,
    )
    const h = await execa(process.execPath, [cli, 'health'], { env: runEnv(v4only), extendEnv: false, reject: false })
    t.equal(h.exitCode, 0, h.stdout)
    t.match(h.stdout, /^healthy: Asterisk answers; transports up: .*udp.*; IPv6 is not available on this host/m)
    t.equal(await registerAt(v4only, 'alice', USERS.alice.password), 200, 'phones register over IPv4')
    run.kill('SIGTERM')
    t.equal((await run).exitCode, 0)
  })
}
