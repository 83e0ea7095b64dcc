import t from 'tap'
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { memoryLogger } from '../../src/base/log.ts'
import { DEFAULTS_DIR, seed } from '../../src/config/seed.ts'

t.test('an empty volume gets every default file', async (t) => {
  const dir = join(mkdtempSync(join(tmpdir(), 'pd-seed-')), 'asterisk')
  const log = memoryLogger()
  const seeded = await seed({ confDir: dir, log, certFiles: [join(dir, '../ssl/asterisk/cert.pem')] })
  t.same(seeded.sort(), readdirSync(DEFAULTS_DIR).sort())
  t.ok(statSync(join(dir, '../ssl/asterisk')).isDirectory(), 'certificate directory made')
  t.match(log.lines.join('\n'), /seeded \d+ default file\(s\)/)
})

t.test('an existing file is never overwritten', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pd-seed-'))
  writeFileSync(join(dir, 'pjsip_endpoint.conf'), '; mine\n')
  const seeded = await seed({ confDir: dir, log: memoryLogger() })
  t.notOk(seeded.includes('pjsip_endpoint.conf'))
  t.equal(readFileSync(join(dir, 'pjsip_endpoint.conf'), 'utf8'), '; mine\n')
  t.ok(existsSync(join(dir, 'extensions.conf')), 'missing ones still seeded')
  t.same(await seed({ confDir: dir, log: memoryLogger() }), [], 'a second run seeds nothing')
})
