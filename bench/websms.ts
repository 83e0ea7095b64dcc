// WebSMS inbound: webhooks accepted and queued (on disk, fsynced) per second, and latency at the
// goal rate. The service runs in a child process so the load generator does not share its event
// loop; a UDP peer answers its MESSAGEs 202 as Asterisk would. Loopback only, bounded in count and
// time. Prints one line per figure.
import { fork } from 'node:child_process'
import { createSocket } from 'node:dgram'
import { once } from 'node:events'
import { Agent, request } from 'node:http'
import { rm } from 'node:fs/promises'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import { createLogger } from '../src/base/log.ts'
import { startWebsms } from '../src/websms/service.ts'
import { freePort } from '../test/helpers/asterisk.ts'
import { websmsConfDir } from '../test/helpers/websms-itsp.ts'

const SECRET = 'bench-secret-0123456789'
const CONCURRENCY = 32
const BURST = 4000
const RATE = 500
const PACED = 2500
const BOUND_MS = 60_000

type FromChild = { ready: { port: number } } | { queued: number; cpuMs: number }

if (process.argv[2] === '--serve') {
  const [confDir = '', spoolDir = ''] = process.argv.slice(3)
  const w = await startWebsms({
    confDir,
    spoolDir,
    port: 0,
    host: '127.0.0.1',
    log: createLogger({ component: 'websms', level: 'error' }),
  })
  process.send!({ ready: { port: w.publicPort } } satisfies FromChild)
  process.on('message', (m) => {
    if (m === 'queued') {
      const cpu = process.cpuUsage()
      process.send!({ queued: w.queued(), cpuMs: (cpu.user + cpu.system) / 1000 } satisfies FromChild)
    }
    if (m === 'stop') void w.close().then(() => process.exit(0))
  })
} else {
  // Asterisk's part: 202 to every MESSAGE, echoing what a response must.
  const sip = createSocket('udp4')
  sip.on('message', (buf, from) => {
    const head = buf.toString('utf8').split('\r\n\r\n')[0]!.split('\r\n')
    const keep = head.filter((l) => /^(Via|From|To|Call-ID|CSeq):/i.test(l))
    sip.send(`SIP/2.0 202 Accepted\r\n${keep.join('\r\n')}\r\nContent-Length: 0\r\n\r\n`, from.port, from.address)
  })
  sip.bind(0, '127.0.0.1')
  await once(sip, 'listening')
  const websms = `[bench]\npreset = 46elks\nusername = u\npassword = p\ninbound_auth = path\ninbound_secret = ${SECRET}\n`
  const confDir = await websmsConfDir({ websms, apiPort: await freePort(), sipPort: sip.address().port })
  const spoolDir = join(confDir, 'spool')
  const child = fork(fileURLToPath(import.meta.url), ['--serve', confDir, spoolDir], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  const next = () => new Promise<FromChild>((resolve) => child.once('message', (m) => resolve(m as FromChild)))
  const ready = await next()
  if (!('ready' in ready)) throw new Error('the WebSMS child did not start')
  const url = `http://127.0.0.1:${ready.ready.port}/inbound/bench/${SECRET}`
  const body = new URLSearchParams({
    direction: 'incoming',
    id: 'sf84',
    from: '+46701234567',
    to: '+12025550102',
    message: 'Hej! Ett sms med emoji 😀 och\nen radbrytning.',
    created: '2026-07-13T13:57:23.741000',
  }).toString()
  const headers = { 'content-type': 'application/x-www-form-urlencoded' }
  let failed = 0
  // node:http with kept-alive connections: a light client leaves the two cores to the service.
  const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY })
  const one = () =>
    new Promise<number>((resolve, reject) => {
      const t0 = performance.now()
      const req = request(
        url,
        { method: 'POST', headers: { ...headers, 'content-length': Buffer.byteLength(body) }, agent },
        (res) => {
          res.resume()
          res.on('end', () => {
            if (res.statusCode !== 200) failed++
            resolve(performance.now() - t0)
          })
        },
      )
      req.on('error', reject)
      req.end(body)
    })
  const deadline = performance.now() + BOUND_MS
  const pct = (xs: number[], p: number) =>
    [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(xs.length * p))]!
  const status = async () => {
    child.send('queued')
    return (await next()) as { queued: number; cpuMs: number }
  }
  const queued = async () => (await status()).queued
  /** Waits for the queue to empty; the rate it emptied at, for a backlog of `backlog`. */
  const drain = async () => {
    const d0 = performance.now()
    const backlog = await queued()
    let left = backlog
    while (left > 0 && performance.now() < deadline + BOUND_MS) {
      await new Promise((r) => setTimeout(r, 50))
      left = await queued()
    }
    return { backlog, perSecond: (backlog - left) / ((performance.now() - d0) / 1000) }
  }

  // Warm up with as many clients as the burst has, so both phases reuse kept-alive connections.
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      for (let i = 0; i < 10; i++) await one()
    }),
  )
  await drain()

  // At the goal rate: posts started on a fixed schedule whatever the answers, so slow answers show;
  // the service delivers to Asterisk meanwhile, as it would under that load.
  const latencies: number[] = []
  const cpu0 = (await status()).cpuMs
  const start = performance.now()
  const pending: Promise<void>[] = []
  for (let i = 0; i < PACED && performance.now() < deadline; i++) {
    const wait = start + (i * 1000) / RATE - performance.now()
    if (wait > 1) await new Promise((r) => setTimeout(r, wait))
    pending.push(one().then((ms) => void latencies.push(ms)))
  }
  await Promise.all(pending)
  const achieved = latencies.length / ((performance.now() - start) / 1000)
  console.log(
    `websms inbound at ${RATE}/s offered (${achieved.toFixed(0)}/s achieved): p50 ${pct(latencies, 0.5).toFixed(1)} ms, p99 ${pct(latencies, 0.99).toFixed(1)} ms, max ${Math.max(...latencies).toFixed(1)} ms (${latencies.length} webhooks, ${failed} not 200; goal p99 < 50 ms)`,
  )
  await drain()
  const cpuPerText = ((await status()).cpuMs - cpu0) / latencies.length
  console.log(
    `websms service CPU: ${cpuPerText.toFixed(2)} ms per webhook, taking it and delivering it to Asterisk (${(1000 / cpuPerText).toFixed(0)}/s would fill one core)`,
  )

  // As fast as it goes: a fixed number of clients, each posting as soon as its last was answered.
  let sent = 0
  const t0 = performance.now()
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (sent < BURST && performance.now() < deadline) {
        sent++
        await one()
      }
    }),
  )
  const secs = (performance.now() - t0) / 1000
  console.log(
    `websms inbound, ${CONCURRENCY} clients: ${(sent / secs).toFixed(0)} webhooks/s accepted and queued (${sent} in ${secs.toFixed(1)} s, ${failed} not 200; goal 500/s)`,
  )

  // The backlog that burst left: how fast the queue hands texts to Asterisk.
  const d = await drain()
  console.log(
    `websms delivery to Asterisk (a UDP peer answering 202): ${d.perSecond.toFixed(0)} texts/s emptying a backlog of ${d.backlog}, one MESSAGE at a time in arrival order`,
  )

  agent.destroy()
  child.send('stop')
  await once(child, 'exit')
  sip.close()
  await rm(confDir, { recursive: true, force: true })
}
