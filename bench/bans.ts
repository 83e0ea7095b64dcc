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
import { prepareTestPbx, USERS } from '../test/helpers/asterisk.ts'
import { makeLab, netnsUnavailable, nftUnavailable, type Lab } from '../test/helpers/netns.ts'
import { finalResponses, findTools, runSipp } from '../test/helpers/sipp.ts'

const ADDRESSES = 1000
const PER_ADDRESS = 10
const THRESHOLD = 10

// A collection before each reading of what stays: the peak, sampled without one, is the headline.
setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void
const rssAnonKb = () => Number(/RssAnon:\s+(\d+)/.exec(readFileSync('/proc/self/status', 'utf8'))![1])
const pct = (xs: number[], p: number) =>
  [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))]

async function flood(tools: Exclude<ReturnType<typeof findTools>, string>, mode: 'nft' | 'asterisk') {
  const lab = await makeLab(['scanner', 'phone'])
  const cleanups: (() => Promise<unknown>)[] = [() => lab.remove()]
  try {
    await measure(tools, mode, lab, cleanups)
  } finally {
    for (const c of cleanups.reverse()) await c().catch((err: Error) => console.log(`cleanup: ${err.message}`))
  }
}

async function measure(
  tools: Exclude<ReturnType<typeof findTools>, string>,
  mode: 'nft' | 'asterisk',
  lab: Lab,
  cleanups: (() => Promise<unknown>)[],
) {
  const scanner = lab.peers.scanner!
  const phone = lab.peers.phone!
  // The flood's sources: 198.19.0.0/16 behind the scanner, routed from the PBX.
  const sources = Array.from({ length: ADDRESSES }, (_, i) => `198.19.${(i + 1) >> 8}.${(i + 1) & 255}`)
  const batch = spawn('ip', ['-n', scanner.netns, '-batch', '-'], { stdio: ['pipe', 'ignore', 'inherit'] })
  batch.stdin.end(sources.map((a) => `addr add ${a}/32 dev eth0`).join('\n') + '\n')
  await new Promise((r) => batch.once('close', r))
  await lab.run(lab.pbx, ['ip', 'route', 'add', '198.19.0.0/16', 'via', scanner.v4])

  const conf = await prepareTestPbx(
    { ...tools.asterisk, bin: await lab.wrap(tools.asterisk.bin) },
    { edit: { 'pjsip_transport.conf': (doc) => setValue(doc, 't_wan', 'bind', '0.0.0.0:5060') } },
  )
  cleanups.push(() => conf.remove())
  const dir = await mkdtemp(join(tmpdir(), 'pd-bench-bans-'))
  cleanups.push(() => rm(dir, { recursive: true, force: true }))
  const listeners: ((line: string) => void)[] = []
  // When each address crossed the threshold, as the line reached this process.
  const crossed = new Map<string, number>()
  const counts = new Map<string, number>()
  listeners.push((line) => {
    const ev = parseSecurityEvent(line)
    if (ev?.kind !== 'failure') return
    const n = (counts.get(ev.address) ?? 0) + 1
    counts.set(ev.address, n)
    if (n === THRESHOLD) crossed.set(ev.address, performance.now())
  })
  let alive = true
  const child = spawnAsterisk(conf.target, { onLine: (line) => listeners.forEach((l) => l(line)) })
  void child.exited.then(() => (alive = false))
  cleanups.push(async () => {
    if (alive) await rx(conf.target, 'core stop now').catch(() => child.kill('SIGKILL'))
    await child.exited
  })
  await waitFullyBooted(conf.target, () => alive)

  const enforced = new Map<string, number>()
  const log = createLogger({
    component: 'bans',
    level: 'info',
    write: (line) => {
      const m = / bans: banned (\S+) /.exec(line)
      if (m) enforced.set(m[1]!, performance.now())
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

  let port = 5100
  const auth = { user: 'probe', password: USERS.probe.password }
  const fromPhone = { netns: { name: phone.netns, address: phone.v4 }, target: `${phone.pbxV4}:5060`, auth }
  const reg = await runSipp(tools.sipp, { ...fromPhone, scenario: 'uac-register.xml', port: port++ })
  if (finalResponses(reg, 'REGISTER').at(-1) !== 200) throw new Error(`the phone did not register:\n${reg.summary}`)

  gc()
  const before = rssAnonKb()
  let peak = before
  const sampler = setInterval(() => (peak = Math.max(peak, rssAnonKb())), 50)
  const lag = monitorEventLoopDelay({ resolution: 10 })
  lag.enable()
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
  await service.settled()
  const seconds = (performance.now() - t0) / 1000
  lag.disable()
  clearInterval(sampler)
  gc()
  const after = rssAnonKb()

  const latencies = [...crossed].flatMap(([a, t]) => (enforced.has(a) ? [enforced.get(a)! - t] : []))
  const sent = JSON.parse(floodOut || '{}') as { sent?: number; answered?: number }
  console.log(
    `ban flood, ${mode}: ${sent.sent} REGISTERs from ${ADDRESSES} addresses in ${seconds.toFixed(1)} s, ${sent.answered} answered; ${crossed.size} addresses crossed the threshold, ${enforced.size} banned`,
  )
  console.log(
    `  threshold to ban enforced: p50 ${pct(latencies, 0.5)?.toFixed(0)} ms, p99 ${pct(latencies, 0.99)?.toFixed(0)} ms, max ${Math.max(...latencies).toFixed(0)} ms (goal p99 < 1000 ms)`,
  )
  console.log(
    `  host process RssAnon: ${(before / 1024).toFixed(1)} MB before, peak ${(peak / 1024).toFixed(1)} MB (+${((peak - before) / 1024).toFixed(1)} MB; goal < 10 MB), ${(after / 1024).toFixed(1)} MB after a collection`,
  )
  console.log(
    `  event-loop delay during the flood: p50 ${(lag.percentile(50) / 1e6).toFixed(1)} ms, p99 ${(lag.percentile(99) / 1e6).toFixed(1)} ms, max ${(lag.max / 1e6).toFixed(1)} ms`,
  )
  console.log(`  the registered phone's calls during the flood: ${connected} of ${calls} answered`)

  await service.stop(Date.now() + 5000)
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
}
