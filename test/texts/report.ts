// `privatedial texts` on a real store dir: counts per user without bodies, bodies only when asked.
import t from 'tap'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { main } from '../../src/commands.ts'
import { memoryLogger } from '../../src/base/log.ts'
import { openStore } from '../../src/texts/store.ts'

t.test('privatedial texts lists per user; --bodies shows the texts, escaped', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'pd-report-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const run = async (...args: string[]) => {
    let out = ''
    const code = await main(['texts', ...args], { TEXT_STORE_DIR: dir }, (s) => {
      out += s
      return true
    })
    return { code, out }
  }
  t.match((await run()).out, `no texts in ${dir}`)
  const s = await openStore({ dir, log: memoryLogger() })
  const time = Date.parse('2026-12-01T08:00:00Z')
  const secret = 'the secret plan \x1b[2J'
  const a = await s.add({ user: 'bob', to: '+1', from: '"Alice" <sip:+1@x>', body: Buffer.from(secret), time })
  await s.add({ user: 'bob', to: '+1', from: '<sip:+2@x>', body: Buffer.from('hi'), time: time + 1000 })
  await s.add({ user: 'alice', to: '+3', from: '<sip:+4@x>', body: Buffer.from('yo'), time: time + 2000 })
  await s.delivered(a.id, 'sip:bob@127.0.0.1:5060', time + 5000)
  await s.close()

  const plain = await run()
  t.equal(plain.code, 0)
  const lines = plain.out.split('\n')
  t.match(lines[0], /^user\s+texts\s+waiting\s+oldest\s+bytes$/)
  t.match(lines[1], /^alice\s+1\s+1\s+2026-12-01T08:00:02.000Z\s+2$/)
  t.match(lines[2], new RegExp(`^bob\\s+2\\s+1\\s+2026-12-01T08:00:00.000Z\\s+${Buffer.byteLength(secret) + 2}$`))
  t.notOk(plain.out.includes('secret plan'), 'no bodies unless asked')

  const full = await run('--bodies')
  t.ok(full.out.includes('"the secret plan \\u001b[2J"'), 'bodies when asked, control characters escaped')
  t.notOk(full.out.includes('\x1b'), 'nothing raw reaches the terminal')
})
