// The ban service under a flood: 10,000 failed REGISTERs from 1,000 addresses at a real Asterisk
// in a network namespace of its own, while a registered phone places calls. Measures the time from
// an address's threshold-crossing failure to its ban being enforced, the host process's own memory
// (RssAnon: what `run` would carry), its event-loop delay (what supervision would wait), and the
// phone's calls. Both modes: nftables, and Asterisk's refusal. Needs root, like the namespace tests.
import { spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { readFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { monitorEventLoopDelay, performance } from 'node:perf_hooks'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { spawnAsterisk, waitFullyBooted, rx } from '../src/asterisk/process.ts'
import { createLogger } from '../src/base/log.ts'
import { setValue } from '../src/config/conf.ts'
import { readSettings } from '../src/config/settings.ts'
import { parseSecurityEvent } from '../src/ban/events.ts'
import { banService } from '../src/ban/service.ts'
import { distCli } from './dist.ts'
import { prepareTestPbx, USERS } from '../test/helpers/asterisk.ts'
import { makeLab, netnsUnavailable, nftUnavailable, type Lab } from '../test/helpers/netns.ts'
import { finalResponses, findTools, runSipp } from '../test/helpers/sipp.ts'

const ADDRESSES = 1000
const PER_ADDRESS = 10
const THRESHOLD = 10

// A collection before each reading of what stays: the peak, sampled without one, is the headline.
setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void
type Tools = Exclude<ReturnType<typeof findTools>, string>

/** A security event's EventTV, "2026-12-01T08:08:23.189+0000", as epoch ms. */
const eventTime = (line: string) =>
  Date.parse(/EventTV="([^"]+)"/.exec(line)![1]!.replace(/([+-]\d\d)(\d\d)$/, '$1:$2'))

/** Each address's threshold-crossing event time, from security event lines as they are added. */
function crossings() {
  const counts = new Map<string, number>()
  const crossed = new Map<string, number>()
  const add = (line: string) => {
    const ev = parseSecurityEvent(line)
    if (ev?.kind !== 'failure') return
    const n = (counts.get(ev.address) ?? 0) + 1
    counts.set(ev.address, n)
    if (n === THRESHOLD) crossed.set(ev.address, eventTime(line))
  }
  return { add, crossed }
}

const latencyLine = (crossed: Map<string, number>, enforced: Map<string, number>) => {
  const ms = [...crossed].flatMap(([a, t]) => (enforced.has(a) ? [enforced.get(a)! - t] : []))
  return `  threshold to ban enforced (from the event's time in Asterisk): p50 ${pct(ms, 0.5)?.toFixed(0)} ms, p99 ${pct(ms, 0.99)?.toFixed(0)} ms, max ${Math.max(...ms).toFixed(0)} ms over ${ms.length} bans (goal p99 < 1000 ms)`
}

const rssAnonKb = () => Number(/RssAnon:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))![1])
const pct = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))]

/** The flood's sources: 198.19.0.0/16 behind the scanner, routed from the PBX. */
async function floodSources(lab: Lab): Promise<string[]> {
  const sources = Array.from({ length: ADDRESSES }, (_, i) => `198.19.${(i + 1) >> 8}.${(i + 1) & 255}`)
  const batch = spawn('ip', ['-n', lab.peers.scanner!.netns, '-batch', '-'], { stdio: ['pipe', 'ignore', 'inherit'] })
  batch.stdin.end(sources.map((a) => `addr add ${a}/32 dev eth0`).join('\n') + '\n')
  await new Promise((r) => batch.once('close', r))
  await lab.run(lab.pbx, ['ip', 'route', 'add', '198.19.0.0/16', 'via', lab.peers.scanner!.v4])
  return sources
}

/**
 * Floods from the scanner while the phone (registered first) places calls one after another.
 * Resolves once the flood is over, with what the flooder saw and the calls' outcome.
 */
async function floodWhileCalling(tools: Tools, lab: Lab, sources: string[]) {
  const scanner = lab.peers.scanner!
  const phone = lab.peers.phone!
  let port = 5100
  const auth = { user: 'probe', password: USERS.probe.password }
  const fromPhone = { netns: phone.netns, host: phone.v4, target: `${phone.pbxV4}:5060`, auth }
  const reg = await runSipp(tools.sipp, { ...fromPhone, scenario: 'uac-register.xml', port: port++ })
  if (finalResponses(reg, 'REGISTER').at(-1) !== 200) throw new Error(`the phone did not register:\n${reg.summary}`)
  const t0 = performance.now()
  const flooder = spawn(
    'ip',
    [
      'netns',
      'exec',
      scanner.netns,
      process.execPath,
      new URL('./bans-flood.ts', import.meta.url).pathname,
      scanner.pbxV4,
      '5060',
      sources.join(','),
      String(PER_ADDRESS),
      '2000',
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  )
  let floodOut = ''
  flooder.stdout.on('data', (c: Buffer) => (floodOut += c.toString()))
  const floodDone = new Promise((r) => flooder.once('close', r))
  let calls = 0
  let connected = 0
  let flooding = true
  void floodDone.then(() => (flooding = false))
  while (flooding || calls < 3) {
    const call = await runSipp(tools.sipp, {
      ...fromPhone,
      scenario: 'uac-call.xml',
      port: port++,
      keys: { from: 'probe', to: USERS.alice.number },
    })
    calls++
    if (finalResponses(call, 'INVITE').includes(200)) connected++
  }
  await floodDone
  const sent = JSON.parse(floodOut || '{}') as { sent?: number; answered?: number }
  return { ...sent, calls, connected, seconds: (performance.now() - t0) / 1000 }
}

async function flood(tools: Tools, mode: 'nft' | 'asterisk') {
  const lab = await makeLab(['scanner', 'phone'])
  const cleanups: (() => Promise<unknown>)[] = [() => lab.remove()]
  try {
    await measure(tools, mode, lab, cleanups)
  } finally {
    for (const c of cleanups.reverse()) await c().catch((err: Error) => console.log(`cleanup: ${err.message}`))
  }
}

async function measure(tools: Tools, mode: 'nft' | 'asterisk', lab: Lab, cleanups: (() => Promise<unknown>)[]) {
  const sources = await floodSources(lab)

  const conf = await prepareTestPbx(
    { ...tools.asterisk, bin: await lab.wrap(tools.asterisk.bin) },
    { edit: { 'pjsip_transport.conf': (doc) => setValue(doc, 't_wan', 'bind', '0.0.0.0:5060') } },
  )
  cleanups.push(() => conf.remove())
  const dir = await mkdtemp(join(tmpdir(), 'pd-bench-bans-'))
  cleanups.push(() => rm(dir, { recursive: true, force: true }))
  const listeners: ((line: string) => void)[] = []
  // When each address crossed the threshold, by Asterisk's clock (the event's own time stamp):
  // what it took this process to read the line counts too.
  const { add, crossed } = crossings()
  listeners.push(add)
  let alive = true
  const gone = new AbortController()
  const child = spawnAsterisk(conf.target, { onLine: (line) => listeners.forEach((l) => l(line)) })
  void child.exited.then(() => {
    alive = false
    gone.abort()
  })
  cleanups.push(async () => {
    if (alive) await rx(conf.target, 'core stop now').catch(() => child.kill('SIGKILL'))
    await child.exited
  })
  await waitFullyBooted(conf.target, gone.signal)

  const enforced = new Map<string, number>()
  const log = createLogger({
    component: 'bans',
    level: 'info',
    write: (line) => {
      const m = / bans: banned (\S+) /.exec(line)
      if (m) enforced.set(m[1]!, Date.now())
      else if (/ERROR/.test(line)) console.log(line)
    },
  })
  const { settings } = readSettings(
    { BAN_MODE: mode, BAN_FILE: join(dir, 'bans.json'), BAN_THRESHOLD: String(THRESHOLD) },
    { readFile: () => '' },
  )
  const service = banService({ nft: ['ip', 'netns', 'exec', lab.pbx, 'nft'] })
  cleanups.push(() => service.stop(Date.now() + 5000))
  await service.start({
    settings,
    confDir: conf.etc,
    log,
    asterisk: {
      onLine: (l) => void listeners.push(l),
      onReady: () => undefined,
      rx: (c) => rx(conf.target, c),
      booted: () => alive,
    },
    signal: new AbortController().signal,
  })

  gc()
  const before = rssAnonKb()
  let peak = before
  const sampler = setInterval(() => (peak = Math.max(peak, rssAnonKb())), 50)
  const lag = monitorEventLoopDelay({ resolution: 10 })
  lag.enable()
  const flood = await floodWhileCalling(tools, lab, sources)
  // Asterisk's output may still be on its way: wait (30 s at most) until no address crossed the
  // threshold for a second and every one that did is banned.
  for (let last = -1, end = Date.now() + 30_000; Date.now() < end; await new Promise((r) => setTimeout(r, 1000))) {
    if (crossed.size === last && [...crossed.keys()].every((a) => enforced.has(a))) break
    last = crossed.size
  }
  await service.settled()
  lag.disable()
  clearInterval(sampler)
  gc()
  const after = rssAnonKb()

  console.log(
    `ban flood, ${mode}: ${flood.sent} REGISTERs from ${ADDRESSES} addresses in ${flood.seconds.toFixed(1)} s, ${flood.answered} answered; ${crossed.size} addresses crossed the threshold, ${enforced.size} banned`,
  )
  console.log(latencyLine(crossed, enforced))
  console.log(
    `  host process RssAnon: ${(before / 1024).toFixed(1)} MB before, peak ${(peak / 1024).toFixed(1)} MB (+${((peak - before) / 1024).toFixed(1)} MB; goal < 10 MB), ${(after / 1024).toFixed(1)} MB after a collection`,
  )
  console.log(
    `  event-loop delay during the flood: p50 ${(lag.percentile(50) / 1e6).toFixed(1)} ms, p99 ${(lag.percentile(99) / 1e6).toFixed(1)} ms, max ${(lag.max / 1e6).toFixed(1)} ms`,
  )
  console.log(`  the registered phone's calls during the flood: ${flood.connected} of ${flood.calls} answered`)

  await service.stop(Date.now() + 5000)
}

/**
 * The same flood at `privatedial run` itself, started inside the PBX's namespace as the container
 * starts it (so its nft works there and nowhere else): its own memory, and its bans and log.
 */
async function floodRun(tools: Tools, mode: 'nft' | 'off') {
  const lab = await makeLab(['scanner', 'phone'])
  const cleanups: (() => Promise<unknown>)[] = [() => lab.remove()]
  try {
    const sources = await floodSources(lab)
    const conf = await prepareTestPbx(tools.asterisk, {
      edit: { 'pjsip_transport.conf': (doc) => setValue(doc, 't_wan', 'bind', '0.0.0.0:5060') },
    })
    cleanups.push(() => conf.remove())
    const cli = distCli()
    const env = {
      PATH: cli.PATH,
      LOG_LEVEL: 'info',
      ASTERISK_CONF_DIR: conf.etc,
      ASTERISK_BIN: tools.asterisk.bin,
      ASTERISK_USER: 'root',
      TLS_CERT_FILE: conf.certFile,
      TLS_KEY_FILE: conf.keyFile,
      MINIVM_SPOOL_DIR: join(conf.dir, 'outbox'),
      BAN_MODE: mode,
      BAN_FILE: join(conf.dir, 'bans.json'),
      BAN_THRESHOLD: String(THRESHOLD),
      // The whole flood's events stay in one file, for the latency below.
      LOG_FILE_MAX_MB: '1000',
    }
    const proc = spawn('ip', ['netns', 'exec', lab.pbx, cli.file, 'run'], {
      env,
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    const exited = new Promise((r) => proc.once('close', r))
    cleanups.push(async () => {
      proc.kill('SIGKILL')
      await exited
    })
    let out = ''
    proc.stdout.on('data', (c: Buffer) => (out += c.toString()))
    for (const end = Date.now() + 60_000; !/PrivateDial ready/.test(out); await new Promise((r) => setTimeout(r, 20)))
      if (Date.now() > end) throw new Error(`run did not get ready:\n${out}`)
    const rss = () => Number(/RssAnon:\s+(\d+)/.exec(readFileSync(`/proc/${proc.pid}/status`, 'utf8'))![1])
    await new Promise((r) => setTimeout(r, 1000))
    const before = rss()
    let peak = before
    const sampler = setInterval(() => (peak = Math.max(peak, rss())), 50)
    const flood = await floodWhileCalling(tools, lab, sources)
    // Run may still be reading Asterisk's output, or enforcing: wait (30 s at most) until every
    // address that crossed the threshold in Asterisk's security file is banned in run's log.
    const enforced = () =>
      new Map([...out.matchAll(/^(\S+) INFO  bans: banned (\S+) /gm)].map((m) => [m[2]!, Date.parse(m[1]!)] as const))
    const crossedInFile = () => {
      const c = crossings()
      for (const line of readFileSync(join(conf.dir, 'log', 'security'), 'utf8').split('\n')) c.add(line)
      return c.crossed
    }
    let crossed = crossedInFile()
    for (
      const end = Date.now() + 30_000;
      mode === 'nft' && Date.now() < end;
      await new Promise((r) => setTimeout(r, 500))
    ) {
      crossed = crossedInFile()
      const done = enforced()
      if ([...crossed.keys()].every((a) => done.has(a))) break
    }
    clearInterval(sampler)
    const banned = enforced()
    const attempts = out.match(/SECURITY\[/g)?.length ?? 0
    proc.kill('SIGTERM')
    await exited
    const tables = await lab.run(lab.pbx, ['nft', 'list', 'tables'])
    console.log(
      `ban flood at privatedial run (BAN_MODE=${mode}, in its namespace): ${flood.sent} REGISTERs from ${ADDRESSES} addresses, ${flood.answered} answered; ${crossed.size} addresses crossed the threshold, ${banned.size} banned; ${attempts} SECURITY lines on its log`,
    )
    if (mode === 'nft') console.log(latencyLine(crossed, banned))
    console.log(
      `  run's RssAnon: ${(before / 1024).toFixed(1)} MB before, peak ${(peak / 1024).toFixed(1)} MB (+${((peak - before) / 1024).toFixed(1)} MB; goal < 10 MB)`,
    )
    console.log(
      `  the registered phone's calls during the flood: ${flood.connected} of ${flood.calls} answered; our nftables table ${/privatedial/.test(tables) ? 'still there after the stop' : 'removed on stop'}`,
    )
  } finally {
    for (const c of cleanups.reverse()) await c().catch((err: Error) => console.log(`cleanup: ${err.message}`))
  }
}

const tools = findTools()
const skip = typeof tools === 'string' ? tools : await netnsUnavailable()
if (skip || typeof tools === 'string') console.log(`ban flood benchmark skipped: ${skip}`)
else {
  const noNft = await nftUnavailable()
  for (const mode of ['nft', 'asterisk'] as const) {
    if (mode === 'nft' && noNft) {
      console.log(`ban flood benchmark, nft: skipped: ${noNft}`)
      continue
    }
    await flood(tools, mode)
  }
  if (!noNft) {
    await floodRun(tools, 'nft')
    // For scale: the same flood with no ban service, what run's reading of Asterisk's output costs.
    await floodRun(tools, 'off')
  }
}
