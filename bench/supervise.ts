// `privatedial run` against a real Asterisk: start-up with 1,000 endpoints, save-to-live for a new
// endpoint, and the node process's memory. Needs ASTERISK_BIN and sipp, like the tests.
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { execFileSync } from 'node:child_process'
import { execa } from 'execa'
import { distCli } from './dist.ts'
import { findAsterisk, freePort, prepareTestPbx } from '../test/helpers/asterisk.ts'
import { finalResponses, findSipp, runSipp } from '../test/helpers/sipp.ts'

const asterisk = findAsterisk()
const sipp = findSipp()
if (typeof asterisk === 'string') {
  console.log(`run benchmarks skipped: ${asterisk}`)
} else if (typeof sipp === 'string') {
  console.log(`run benchmarks skipped: ${sipp}`)
} else {
  const conf = await prepareTestPbx(asterisk)
  const file = join(conf.etc, 'pjsip_endpoint.conf')
  let extra = ''
  for (let i = 0; i < 1000; i++)
    extra += `\n[bench${i}](w_term:test)\nhint_exten = +1303555${String(i).padStart(4, '0')}\ninbound_auth/username = bench${i}\ninbound_auth/password = bench-pw-${i}\n`
  writeFileSync(file, readFileSync(file, 'utf8') + extra)
  const cli = distCli()
  const env = {
    ...process.env,
    PATH: cli.PATH,
    LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'info',
    ASTERISK_CONF_DIR: conf.etc,
    ASTERISK_BIN: asterisk.bin,
    ASTERISK_USER: 'root',
    TLS_CERT_FILE: conf.certFile,
    TLS_KEY_FILE: conf.keyFile,
    MINIVM_SPOOL_DIR: join(conf.dir, 'outbox'),
    TEXT_STORE_DIR: join(conf.dir, 'texts'),
    AMI_PORT: String(conf.amiPort),
    // Never nftables in the machine's own namespace, never the machine's /var/lib.
    BAN_MODE: 'asterisk',
    BAN_FILE: join(conf.dir, 'bans.json'),
  }
  const start = () => {
    const t0 = performance.now()
    const proc = execa(cli.file, ['run'], {
      env,
      extendEnv: false,
      reject: false,
      all: true,
      buffer: false,
      forceKillAfterDelay: false,
    })
    let out = ''
    const seen = new Map<string, number>()
    const marks: [string, RegExp][] = [
      ['spawned', /Asterisk started/],
      ['ready', /PrivateDial ready/],
      ['reloaded', /reloaded after a change/],
    ]
    proc.all!.on('data', (c: Buffer) => {
      out += c.toString()
      for (const [k, re] of marks) if (!seen.has(k) && re.test(out)) seen.set(k, performance.now())
    })
    /** When the first line matching mark `k` came. */
    const until = async (k: string) => {
      for (const end = Date.now() + 60_000; !seen.has(k); await new Promise((r) => setTimeout(r, 5)))
        if (Date.now() > end) throw new Error(`no "${k}" in run's output:\n${out}`)
      return seen.get(k)!
    }
    return { proc, t0, until, out: () => out }
  }
  // One start is at the mercy of whatever else the machine does: take the median of five.
  const spawnTimes: number[] = []
  for (let i = 0; i < 4; i++) {
    const r = start()
    spawnTimes.push((await r.until('spawned')) - r.t0)
    await r.until('ready')
    r.proc.kill('SIGTERM')
    await r.proc
  }
  const { proc, t0, until, out } = start()
  spawnTimes.push((await until('spawned')) - t0)
  spawnTimes.sort((x, y) => x - y)
  console.log(
    `run start to Asterisk spawned, 1,000 endpoints: median ${spawnTimes[2]!.toFixed(0)} ms of 5 starts, ${spawnTimes[0]!.toFixed(0)}-${spawnTimes[4]!.toFixed(0)} (whole process, goal < 200 ms)`,
  )
  console.log(
    `run start to PBX ready (Asterisk fully booted), 1,000 endpoints: ${((await until('ready')) - t0).toFixed(0)} ms`,
  )
  console.log(`  ${/PrivateDial ready.*/.exec(out())?.[0]}`)
  // RSS counts the node binary's code that ran (clean, shared, reclaimable pages) beside the
  // process's own memory: both are shown, and what the same binary takes doing (almost) nothing.
  const mb = (status: string, field: string) => Number(new RegExp(`${field}:\\s+(\\d+)`).exec(status)![1]) / 1024
  const memory = async (afterMs: number) => {
    await new Promise((r) => setTimeout(r, afterMs))
    const status = readFileSync(`/proc/${proc.pid}/status`, 'utf8')
    return `RssAnon ${mb(status, 'RssAnon').toFixed(1)} MB, RSS ${mb(status, 'VmRSS').toFixed(1)} MB (${mb(status, 'RssFile').toFixed(1)} MB of it the node binary's code that ran)`
  }
  // RssAnon is the process's own memory (heap, buffers); the goal is <= 30 MB. V8 gives back
  // what boot left over once allocation has been quiet for a while: both moments are shown.
  console.log(`memory of run 1 s after boot, 1,000 endpoints: ${await memory(1000)}; goal RssAnon <= 30 MB`)
  console.log(`memory of run 10 s after boot, 1,000 endpoints: ${await memory(9000)}`)
  const bare = (code: string) =>
    mb(
      execFileSync(
        process.execPath,
        ['-e', `${code};process.stdout.write(require('fs').readFileSync('/proc/self/status','utf8'))`],
        { encoding: 'utf8' },
      ),
      'VmRSS',
    ).toFixed(1)
  console.log(
    `  for scale, this node binary: ${bare('0')} MB doing nothing, ${bare('let h=0;for(let i=0;i<3e6;i++)h=(h*31+String(i).length)|0')} MB after one loop hot enough for V8's optimising compiler`,
  )

  const saved = performance.now()
  writeFileSync(
    file,
    readFileSync(file, 'utf8') +
      '\n[newbie](w_term:test)\nhint_exten = +13035559999\ninbound_auth/username = newbie\ninbound_auth/password = newbie-pw-1\n',
  )
  let live = 0
  for (let tries = 0; tries < 200 && !live; tries++) {
    const r = await runSipp(sipp.bin, {
      scenario: 'uac-register.xml',
      target: `127.0.0.1:${conf.sipPort}`,
      port: await freePort(),
      auth: { user: 'newbie', password: 'newbie-pw-1' },
    })
    if (finalResponses(r, 'REGISTER').at(-1) === 200) live = performance.now()
  }
  console.log(
    `save of pjsip_endpoint.conf to the new endpoint registering, 1,000 endpoints: ${live ? (live - saved).toFixed(0) + ' ms' : 'never'} (reload logged after ${((await until('reloaded')) - saved).toFixed(0)} ms; goal < 1000 ms)`,
  )
  if (process.env.BENCH_LOG_LEVEL)
    console.log(
      out()
        .split('\n')
        .filter((l) => !/ asterisk: /.test(l))
        .slice(0, 30)
        .join('\n'),
    )
  proc.kill('SIGTERM')
  await proc
  await conf.remove()
}
