// `npm run bench -- itsp`: calls and texts at a fixed rate through the full dial plan on a real
// Asterisk, and through a bare one (Dial(PJSIP/callee) straight away) on the same Asterisk, in the
// same run: local phone to local phone (authenticated, every contact rung, answered, held 1 s),
// trunk to local phone, and texts local to local. For each, the highest rate of those tried with
// no failed call (no lost text) over BENCH_SECONDS (60). Rates tried: BENCH_RATES (100,200,300),
// upwards until one fails. At most 3 kinds x 2 dial plans x rates x (BENCH_SECONDS + ~30 s).
// A run that leaves channels up (Asterisk past a limit, such as open files) counts as failed, with
// Asterisk's first warning of the run, and a fresh Asterisk takes the next one.
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setValue } from '../src/config/conf.ts'
import { findAsterisk, freePort, startTestPbx, USERS, type TestPbx } from '../test/helpers/asterisk.ts'
import { findSipp, finalResponses, runSipp, startSipp, type SippOptions } from '../test/helpers/sipp.ts'

const seconds = Number(process.env.BENCH_SECONDS ?? 60)
const CALLEE = '+13035550100'
const CALLEE_PASSWORD = 'callee-pw-8u7i'
const rates = (process.env.BENCH_RATES ?? '100,200,300').split(',').map(Number)

/** The last line of a sipp -trace_stat file, by column. */
async function stats(file: string): Promise<Record<string, string>> {
  const [header, ...rows] = (await readFile(file, 'utf8')).trim().split('\n')
  const names = header!.split(';')
  const last = rows.at(-1)!.split(';')
  return Object.fromEntries(names.map((n, i) => [n, last[i] ?? '']))
}

/**
 * Until Asterisk has no channel left, so one run's calls don't weigh on the next; or, a minute
 * on, the channels it still holds (Asterisk past its limits keeps some for good).
 */
async function drained(pbx: TestPbx): Promise<string | undefined> {
  let count = ''
  for (const end = Date.now() + 60_000; Date.now() < end; await new Promise((r) => setTimeout(r, 500)))
    if (/^0 active channels/m.test((count = await pbx.rx('core show channels count')))) return undefined
  return /^\d+ active channels/m.exec(count)?.[0] ?? count.trim()
}

const asterisk = findAsterisk()
const sipp = findSipp()
if (typeof asterisk === 'string') console.log(`itsp load benchmark skipped: ${asterisk}`)
else if (typeof sipp === 'string') console.log(`itsp load benchmark skipped: ${sipp}`)
else {
  const bareTrunkPort = await freePort()
  const calleePort = await freePort()
  /** A fresh Asterisk with the callee's phone registered: at start, and after a run it did not survive. */
  const boot = async () => {
    const started = await startTestPbx(asterisk, {
      edit: {
        // As shipped: the call flow on the log costs more than the calls at these rates.
        'asterisk.conf': (doc) => setValue(doc, 'options', 'verbose', '0'),
        // No texts service here: the dial plan texts the phones itself, as with the service off
        // (a port with nobody on it would cost every text a refused connect and a WARNING).
        // The service's own path, store then delivery, is bench/texts.ts.
        'extensions_local.conf': (doc) => setValue(doc, 'globals', 'TEXT_STORE_PORT', ''),
        // Each call leg takes two ports: the shipped 100 carry about 25 calls at once.
        'rtp.conf': (doc) => {
          setValue(doc, 'general', 'rtpstart', '10000')
          setValue(doc, 'general', 'rtpend', '40000')
        },
      },
      append: {
        'extensions_local.conf':
          `[bench_bare]\nexten => ${CALLEE},1,Dial(PJSIP/callee)\n` +
          `[bench_bare_text]\nexten => ${CALLEE},1,MessageSend(pjsip:callee)\n`,
        'pjsip_endpoint.conf':
          // No mailbox: a call the phone can't take fails, where voicemail would answer it.
          `[callee](w_term:test)\nhint_exten = ${CALLEE}\nendpoint/callerid = Callee <${CALLEE}>\n` +
          `inbound_auth/username = callee\ninbound_auth/password = ${CALLEE_PASSWORD}\n\n` +
          `[alice-bare](w_term:test)\nendpoint/context = bench_bare\nendpoint/message_context = bench_bare_text\n` +
          `inbound_auth/username = alice-bare\ninbound_auth/password = ${USERS.alice.password}\n\n` +
          `[itsp:bare](w_trunk)\nremote_hosts = 127.0.0.1:${bareTrunkPort}\nendpoint/context = bench_bare\n`,
      },
    })
    const reg = await runSipp(sipp.bin, {
      scenario: 'uac-register.xml',
      target: started.target,
      port: calleePort,
      auth: { user: 'callee', password: CALLEE_PASSWORD },
      keys: { expires: '3600' },
    })
    if (finalResponses(reg, 'REGISTER').at(-1) === 200) return started
    await started.stop()
    throw new Error(`the callee's phone did not register:\n${reg.summary}`)
  }
  let pbx = await boot()
  const dir = await mkdtemp(join(tmpdir(), 'pd-bench-itsp-'))
  try {
    console.log(`itsp load: ${pbx.version.split('\n')[0]}; ${seconds} s per run; rates ${rates.join(', ')}/s`)

    /** One run: `total` calls (or texts) at `rate`; the failed ones, and what the callee's phone took. */
    const run = async (rate: number, caller: Omit<SippOptions, 'target'>, calleeScenario: string) => {
      const total = rate * seconds
      const logFrom = pbx.log().length
      const timeout = ['-timeout', `${seconds + 60}s`]
      const calleeStat = join(dir, `callee-${caller.scenario}-${rate}.csv`)
      const callee = await startSipp(sipp.bin, {
        scenario: calleeScenario,
        target: pbx.target,
        port: calleePort,
        calls: total,
        trace: false,
        // Counts written every second: a callee still waiting for what never came is stopped, and
        // a stopped sipp writes no last line.
        args: [...timeout, '-trace_stat', '-stf', calleeStat, '-fd', '1'],
      })
      const callerStat = join(dir, `caller-${caller.scenario}-${rate}.csv`)
      await runSipp(sipp.bin, {
        ...caller,
        target: pbx.target,
        calls: total,
        trace: false,
        args: [...timeout, '-r', String(rate), '-trace_stat', '-stf', callerStat],
      })
      // What is still on its way arrives within seconds; then the callee stops waiting.
      const late = setTimeout(() => callee.stop(), 10_000)
      await callee.done
      clearTimeout(late)
      const left = await drained(pbx)
      const c = await stats(callerStat)
      const b = await stats(calleeStat).catch(() => ({}) as Record<string, string>)
      // A call sipp never got to make counts as failed too.
      return {
        failed: total - Number(c['SuccessfulCall(C)'] ?? 0),
        received: Number(b['SuccessfulCall(C)'] ?? 0),
        total,
        left,
        // What Asterisk ran out of is in its first complaint, not in the calls' counts.
        complaint: /(?:WARNING|ERROR)\[[^\n]*?: ([^\n]+)/.exec(pbx.log().slice(logFrom))?.[1] ?? 'none',
      }
    }

    const kinds = [
      {
        name: 'calls, local phone to local phone',
        callee: 'uas-answer-wait.xml',
        caller: (bare: boolean) => ({
          scenario: 'uac-call-1s.xml',
          auth: { user: bare ? 'alice-bare' : 'alice', password: USERS.alice.password },
          keys: { from: bare ? 'alice-bare' : 'alice', to: CALLEE },
        }),
      },
      {
        name: 'calls, trunk to local phone',
        callee: 'uas-answer-wait.xml',
        caller: (bare: boolean) => ({
          scenario: 'uac-call-1s.xml',
          port: bare ? bareTrunkPort : pbx.trunkPort,
          keys: { from: '+46705550199', to: CALLEE },
        }),
      },
      {
        name: 'texts, local phone to local phone',
        callee: 'uas-message.xml',
        caller: (bare: boolean) => ({
          scenario: 'uac-message.xml',
          auth: { user: bare ? 'alice-bare' : 'alice', password: USERS.alice.password },
          keys: { from: bare ? 'alice-bare' : 'alice', to: CALLEE, body: 'load' },
        }),
      },
    ]
    for (const kind of kinds) {
      const best: Record<string, number> = {}
      for (const plan of ['ours', 'bare']) {
        best[plan] = 0
        for (const rate of rates) {
          const caller = { port: await freePort(), ...kind.caller(plan === 'bare') }
          const r = await run(rate, caller, kind.callee)
          const lost = kind.callee === 'uas-message.xml' ? r.total - r.received : 0
          console.log(
            `  ${kind.name}, ${plan} dial plan, ${rate}/s: ${r.failed} failed, ${lost} lost of ${r.total}; the callee's phone took ${r.received}; Asterisk's first warning: ${r.complaint}`,
          )
          if (r.left) {
            console.log(`    ${r.left} a minute after the run; a fresh Asterisk goes on`)
            await pbx.stop()
            pbx = await boot()
          }
          if (r.failed || lost || r.left) break
          best[plan] = rate
        }
      }
      const share = best.bare ? ` (${((100 * best.ours!) / best.bare).toFixed(0)}% of bare)` : ''
      console.log(
        `itsp load: ${kind.name}: ours ${best.ours}/s, bare ${best.bare}/s${share}, highest tried with none failed over ${seconds} s`,
      )
    }
  } catch (err) {
    // Asterisk's last words say why a run could not go on (a crash, a limit reached).
    console.log(`itsp load failed: ${(err as Error).message}\nAsterisk's log ends:\n${pbx.log().slice(-4000)}`)
    process.exitCode = 1
  } finally {
    await pbx.stop()
    await rm(dir, { recursive: true, force: true })
  }
}
