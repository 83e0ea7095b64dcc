import t from 'tap'
import { cpSync, existsSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { memoryLogger } from '../../src/base/log.ts'
import { applyToDir } from '../../src/config/apply.ts'
import { readSettings } from '../../src/config/settings.ts'
import { DEFAULTS_DIR, MANIFEST, decide, readManifest, seed, sha256 } from '../../src/config/seed.ts'

const scratch = () => mkdtempSync(join(tmpdir(), 'pd-seed-'))
const read = (dir: string, f: string) => readFileSync(join(dir, f), 'utf8')

/** A shipped defaults dir with these files, as an image would carry them. */
function shipped(files: Record<string, string>): string {
  const dir = scratch()
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text)
  return dir
}

t.test('an empty volume gets every default file, and a manifest of where each came from', async (t) => {
  const dir = join(scratch(), 'asterisk')
  const log = memoryLogger()
  const { seeded } = await seed({ confDir: dir, log, certFiles: [join(dir, '../ssl/asterisk/cert.pem')] })
  t.same(seeded.sort(), readdirSync(DEFAULTS_DIR).sort())
  t.ok(statSync(join(dir, '../ssl/asterisk')).isDirectory(), 'certificate directory made')
  t.match(log.lines.join('\n'), /seeded \d+ default file\(s\)/)
  const manifest = await readManifest(dir)
  t.same(Object.keys(manifest).sort(), seeded.sort())
  t.equal(manifest['extensions.conf']?.shipped, sha256(readFileSync(join(DEFAULTS_DIR, 'extensions.conf'))))
  t.same(await seed({ confDir: dir, log: memoryLogger() }), { seeded: [], updated: [], offered: [] })
})

t.test(
  'a new image: untouched files take the new version, changed ones get it beside them, new ones arrive',
  async (t) => {
    const dir = scratch()
    const v1 = shipped({ 'a.conf': 'a1\n', 'b.conf': 'b1\n', 'c.conf': 'c1\n', 'gone.conf': 'g1\n' })
    await seed({ from: v1, confDir: dir, log: memoryLogger() })
    writeFileSync(join(dir, 'b.conf'), 'b1\n; mine; "quoted" => x\n')
    writeFileSync(join(dir, 'c.conf'), 'mine\n')

    const v2 = shipped({ 'a.conf': 'a2\n', 'b.conf': 'b2\n', 'c.conf': 'c1\n', 'new.conf': 'n2\n' })
    const log = memoryLogger()
    const result = await seed({ from: v2, confDir: dir, log })
    t.same(result, { seeded: ['new.conf'], updated: ['a.conf'], offered: ['b.conf'] })
    t.equal(read(dir, 'a.conf'), 'a2\n', 'a file the user never changed takes the fix')
    t.equal(read(dir, 'b.conf'), 'b1\n; mine; "quoted" => x\n', "the user's file is kept as they wrote it")
    t.equal(read(dir, 'b.conf.new'), 'b2\n', 'the new version beside it')
    t.equal(read(dir, 'c.conf'), 'mine\n', 'a changed file whose shipped version did not change: nothing to offer')
    t.notOk(existsSync(join(dir, 'c.conf.new')))
    t.equal(read(dir, 'new.conf'), 'n2\n')
    t.equal(read(dir, 'gone.conf'), 'g1\n', 'a file no longer shipped stays')
    const offers = log.lines.filter((l) => l.includes('b.conf.new'))
    t.equal(offers.length, 1, 'one line says so')
    t.match(offers[0], `diff -u ${join(dir, 'b.conf')} ${join(dir, 'b.conf.new')}`, 'and how to compare')
    t.notOk('gone.conf' in (await readManifest(dir)))

    const again = memoryLogger()
    t.same(await seed({ from: v2, confDir: dir, log: again }), { seeded: [], updated: [], offered: [] })
    t.notMatch(again.lines.join('\n'), /\.new/, 'the next start says nothing more about it')
    writeFileSync(join(dir, 'b.conf'), 'b2\n')
    await seed({ from: v2, confDir: dir, log: memoryLogger() })
    const v3 = shipped({ 'a.conf': 'a2\n', 'b.conf': 'b3\n', 'c.conf': 'c1\n', 'new.conf': 'n2\n' })
    t.same(
      (await seed({ from: v3, confDir: dir, log: memoryLogger() })).updated,
      ['b.conf'],
      'taking the new version makes it ours again',
    )
  },
)

t.test("a volume from before the manifest: files are the user's unless they are the shipped version", async (t) => {
  const dir = scratch()
  writeFileSync(join(dir, 'a.conf'), 'a1\n')
  writeFileSync(join(dir, 'b.conf'), 'b0\n')
  const v2 = shipped({ 'a.conf': 'a1\n', 'b.conf': 'b2\n' })
  const result = await seed({ from: v2, confDir: dir, log: memoryLogger() })
  t.same(result, { seeded: [], updated: [], offered: ['b.conf'] })
  t.equal(read(dir, 'b.conf'), 'b0\n')
  t.equal(read(dir, 'b.conf.new'), 'b2\n')
  const v3 = shipped({ 'a.conf': 'a3\n', 'b.conf': 'b2\n' })
  t.same((await seed({ from: v3, confDir: dir, log: memoryLogger() })).updated, ['a.conf'])
})

t.test("a file apply wrote the environment into stays the image's; one the user edited stays theirs", async (t) => {
  const dir = scratch()
  const v1 = scratch()
  cpSync(DEFAULTS_DIR, v1, { recursive: true })
  await seed({ from: v1, confDir: dir, log: memoryLogger() })
  writeFileSync(join(dir, 'rtp.conf'), read(dir, 'rtp.conf') + '; my tuning\n')
  const { settings } = readSettings({ SIP_DOMAIN: 'pbx.example.org', RTP_PORT_MIN: '10010' }, { readFile: () => '' })
  const applied = await applyToDir({ confDir: dir, settings, log: memoryLogger() })
  t.same(applied.files.sort(), ['pjsip_transport.conf', 'rtp.conf'])

  const v2 = scratch()
  cpSync(v1, v2, { recursive: true })
  for (const f of ['pjsip_transport.conf', 'rtp.conf']) writeFileSync(join(v2, f), read(v1, f) + '; fixed\n')
  const result = await seed({ from: v2, confDir: dir, log: memoryLogger() })
  t.same(result.updated, ['pjsip_transport.conf'], 'the file only apply changed takes the fix')
  t.same(result.offered, ['rtp.conf'])
  t.match(read(dir, 'rtp.conf'), '; my tuning', "the user's edit is kept")
})

t.test('a manifest that is not JSON is an error naming it, and nothing is written', async (t) => {
  const dir = scratch()
  writeFileSync(join(dir, MANIFEST), '{ not json')
  await t.rejects(seed({ from: shipped({ 'a.conf': 'a\n' }), confDir: dir, log: memoryLogger() }), {
    message: new RegExp(`${MANIFEST}: expected JSON`),
  })
  t.notOk(existsSync(join(dir, 'a.conf')))
})

t.test('decide, case by case', async (t) => {
  const entry = { shipped: 'S1', ours: 'O1' }
  t.same(decide('S2', undefined, entry), { kind: 'seed' })
  t.same(decide('S2', 'S2', undefined), { kind: 'keep', entry: { shipped: 'S2', ours: 'S2' } })
  t.same(decide('S2', 'O1', entry), { kind: 'update' })
  t.same(decide('S1', 'O1', entry), { kind: 'keep', entry })
  t.same(decide('S2', 'U', entry), { kind: 'offer' })
  t.same(decide('S1', 'U', entry), { kind: 'keep', entry })
  t.same(decide('S2', 'U', undefined), { kind: 'offer' })
  t.same(decide('S2', 'U', { shipped: 'S2' }), { kind: 'keep', entry: { shipped: 'S2' } })
})
