// `npm run bench`: timings that tests must not assert. Prints one line per measurement.
import { cpSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { execFileSync } from 'node:child_process'
import { applyToDir } from '../src/config/apply.ts'
import { checkConfDir } from '../src/check.ts'
import { memoryLogger } from '../src/base/log.ts'
import { readSettings } from '../src/config/settings.ts'
import { DEFAULTS_DIR } from '../src/config/seed.ts'
import { defaultAsteriskBin } from '../scripts/asterisk-bin.ts'

// `npm run bench -- itsp`: the ITSP load benchmark alone; it takes minutes, the rest seconds.
if (process.argv[2] === 'itsp') {
  defaultAsteriskBin()
  await import('./itsp.ts')
  process.exit(0)
}

function endpoints(n: number): string {
  let text =
    '[itsp:bench](w_trunk)\nremote_hosts = sip.example.com\n\n[w_term:bench](!,w_term_io)\nendpoint/set_var = TRUNK_ENDPOINT=itsp:bench\n\n'
  for (let i = 0; i < n; i++) {
    const num = String(2025550000 + i)
    text += `[user${i}](w_term:bench)\nhint_exten = +1${num}\nendpoint/callerid = User ${i} <+1${num}>\ninbound_auth/username = user${i}\ninbound_auth/password = secret${i}\n\n`
  }
  return text
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

async function timeIt(runs: number, f: () => unknown): Promise<number> {
  const times: number[] = []
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now()
    await f()
    times.push(performance.now() - t0)
  }
  return median(times)
}

const env = {
  SIP_DOMAIN: 'example.com',
  SIP_PORT: '5560',
  SIP_LOCAL_NET: '10.0.0.0/8',
  SMTP_HOST: 'mx.example.com',
  COUNTRY_CODE: '46',
}
const { settings } = readSettings(env, { readFile: () => '' })

for (const n of [10, 1_000, 10_000]) {
  const dir = mkdtempSync(join(tmpdir(), 'pd-bench-'))
  cpSync(DEFAULTS_DIR, dir, { recursive: true })
  writeFileSync(join(dir, 'pjsip_endpoint.conf'), endpoints(n))
  const apply = await timeIt(5, async () => {
    cpSync(join(DEFAULTS_DIR, 'pjsip_transport.conf'), join(dir, 'pjsip_transport.conf'))
    await applyToDir({ confDir: dir, settings, log: memoryLogger() })
  })
  const check = await timeIt(5, async () => {
    const r = await checkConfDir(dir)
    if (r.problems.length) throw new Error(r.problems.join('\n'))
  })
  console.log(
    `apply+check ${String(n).padStart(6)} endpoints: apply ${apply.toFixed(1)} ms, check ${check.toFixed(1)} ms, total ${(apply + check).toFixed(1)} ms (median of 5; goal < 1000 ms at 10,000)`,
  )
  rmSync(dir, { recursive: true, force: true })
}

const cli = new URL('../bin/privatedial.js', import.meta.url).pathname
const help = await timeIt(10, () => execFileSync(process.execPath, [cli, '--help'], { stdio: 'ignore' }))
console.log(`privatedial --help: ${help.toFixed(1)} ms (median of 10, whole process; goal < 150 ms)`)

defaultAsteriskBin()
await import('./supervise.ts')
await import('./websms.ts')
await import('./bans.ts')
await import('./texts.ts')
await import('./image.ts')
await import('./itsp.ts')
