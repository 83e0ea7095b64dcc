// Texts for offline phones: 100 users with 10 texts waiting each, then all their phones register
// at once. Texts go in as the WebSMS endpoint would send them (SIP MESSAGE into the dial plan, which
// hands each to the store); the texts service runs in its own process (as run would), phones are
// test/helpers/phone.ts. Prints texts stored/s, delivered/s, REGISTER-to-last-text latency, and
// whether any was lost or came twice. Loopback only; bounded in time.
import { spawn } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { setValue } from '../src/config/conf.ts'
import { openSipClient } from '../src/websms/sip-message.ts'
import { findAsterisk, freePort, startAsterisk } from '../test/helpers/asterisk.ts'
import { startPhone, type Phone } from '../test/helpers/phone.ts'
import { waitFor } from '../test/helpers/wait-for.ts'

const USERS = 100
const PER_USER = 10
const IN_FLIGHT = 20
const SERVE = fileURLToPath(new URL('../test/fixtures/texts/serve.ts', import.meta.url))

const asterisk = findAsterisk()
if (typeof asterisk === 'string') console.log(`texts bench skipped: ${asterisk}`)
else {
  const number = (i: number) => `+1555${String(i).padStart(7, '0')}`
  let endpoints = ''
  for (let i = 0; i < USERS; i++)
    endpoints += `[u${i}](w_term_io)\nhint_exten = ${number(i)}\nendpoint/callerid = U${i} <${number(i)}>\ninbound_auth/username = u${i}\ninbound_auth/password = pw-${i}-bench\n\n`
  const [storePort, amiPort, websmsPort] = [await freePort(), await freePort(), await freePort()]
  const pbx = await startAsterisk(asterisk, {
    endpoints,
    edit: {
      // Phones are on 127.0.0.1 too: the WebSMS endpoint is told apart by its port.
      'pjsip.conf': (doc) => setValue(doc, 'websms', 'match', `127.0.0.1:${websmsPort}`),
      'extensions_local.conf': (doc) => {
        setValue(doc, 'globals', 'TEXT_STORE_PORT', String(storePort))
        setValue(doc, 'globals', 'WEBSMS_API_PORT', '')
      },
    },
  })
  const storeDir = await mkdtemp(join(tmpdir(), 'pd-bench-texts-'))
  const lines: string[] = []
  const child = spawn(process.execPath, [SERVE], {
    env: {
      ...process.env,
      ASTERISK_CONF_DIR: join(pbx.dir, 'etc'),
      ASTERISK_BIN: asterisk.bin,
      TEXT_STORE_DIR: storeDir,
      AMI_PORT: String(amiPort),
      TEXT_MAX_PER_USER: String(PER_USER),
      LOG_LEVEL: 'info',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  createInterface({ input: child.stdout }).on('line', (l) => lines.push(l))
  const stored = () => lines.filter((l) => l.includes('text stored')).length
  try {
    await waitFor('the texts service', () => lines.some((l) => l.includes('contacts from Asterisk')), 30_000)
    const sip = await openSipClient({ localAddress: '127.0.0.1', localPort: websmsPort })
    const target = { host: '127.0.0.1', port: pbx.sipPort }
    // Text n for user i says so: what each phone must get, in order, once.
    const jobs = Array.from({ length: USERS * PER_USER }, (_, k) => ({
      user: k % USERS,
      body: `text ${Math.floor(k / USERS)} for u${k % USERS} 😀`,
    }))
    const t0 = performance.now()
    let next = 0
    await Promise.all(
      Array.from({ length: IN_FLIGHT }, async () => {
        while (next < jobs.length) {
          const job = jobs[next++]!
          await sip.send(target, { to: number(job.user), from: '+46700000000', body: job.body })
        }
      }),
    )
    await waitFor('every text stored', () => stored() === jobs.length, 120_000)
    const storeSecs = (performance.now() - t0) / 1000
    console.log(
      `texts stored: ${(jobs.length / storeSecs).toFixed(0)}/s (${jobs.length} texts for ${USERS} offline users through the dial plan into the store, in ${storeSecs.toFixed(2)} s)`,
    )
    await sip.close()

    const phones: Phone[] = await Promise.all(
      Array.from({ length: USERS }, (_, i) => startPhone({ target, user: `u${i}`, password: `pw-${i}-bench` })),
    )
    const registered: number[] = []
    const latencies: number[] = []
    const r0 = performance.now()
    await Promise.all(
      phones.map(async (p, i) => {
        const status = await p.register()
        registered[i] = performance.now()
        if (status !== 200) throw new Error(`u${i}'s phone got ${status} to REGISTER`)
        await p.waitForTexts(PER_USER, 60_000)
        latencies.push(performance.now() - registered[i]!)
      }),
    )
    const deliverSecs = (performance.now() - r0) / 1000
    // Anything sent twice would have arrived by now: MessageSend goes out at once.
    await new Promise((r) => setTimeout(r, 2000))
    let wrong = 0
    phones.forEach((p, i) => {
      const want = Array.from({ length: PER_USER }, (_, n) => `text ${n} for u${i} 😀`)
      if (JSON.stringify(p.texts.map((m) => m.body)) !== JSON.stringify(want)) wrong++
    })
    latencies.sort((a, b) => a - b)
    const pct = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))]!
    console.log(
      `texts delivered: ${(jobs.length / deliverSecs).toFixed(0)}/s (${jobs.length} to ${USERS} phones registering at once, all in ${deliverSecs.toFixed(2)} s; goal 1,000 in < 5 s)`,
    )
    console.log(
      `texts REGISTER 200 OK to last text: p50 ${pct(0.5).toFixed(0)} ms, p99 ${pct(0.99).toFixed(0)} ms, max ${latencies.at(-1)!.toFixed(0)} ms (goal < 2000 ms)`,
    )
    console.log(
      `texts lost or duplicated: ${wrong} of ${USERS} phones got anything but their ${PER_USER} texts once each, in order (goal 0)`,
    )
    await Promise.all(phones.map(async (p) => (await p.register(0), await p.close())))
  } finally {
    child.kill('SIGTERM')
    await new Promise((r) => child.once('exit', r))
    await pbx.stop()
    await rm(storeDir, { recursive: true, force: true })
  }
}
