import t from 'tap'
import { chmodSync, mkdirSync, mkdtempSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { permits, prepareAsteriskDirs, unreadableByAsterisk } from '../../src/asterisk/dirs.ts'
import { memoryLogger } from '../../src/base/log.ts'

t.test("Asterisk's writable directories are made and given to its user", async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'pd-dirs-'))
  t.teardown(() => void import('node:fs').then((fs) => fs.rmSync(root, { recursive: true, force: true })))
  const etc = join(root, 'etc')
  mkdirSync(etc)
  const d = (n: string) => join(root, n)
  writeFileSync(
    join(etc, 'asterisk.conf'),
    `[directories]\nastetcdir => ${etc}\nastrundir => ${d('run/asterisk')}\nastspooldir => ${d('spool')}\nastlogdir => ${d('log')}\nastvarlibdir => ${d('lib')}\nastdbdir => ${d('lib/db')}\nastcachedir => ${d('cache')}\nastmoddir => ${d('modules')}\n`,
  )
  // Root can hand directories to another user; anyone else can only check they are made.
  const owner = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : undefined
  const log = memoryLogger('dirs')
  const made = await prepareAsteriskDirs(etc, owner, log)
  t.same(
    made.sort(),
    ['run/asterisk', 'spool', 'log', 'lib', 'lib/db', 'cache'].map(d).sort(),
    'the writable ones, not modules or config',
  )
  for (const dir of made) {
    t.ok(statSync(dir).isDirectory(), dir)
    if (owner) t.equal(statSync(dir).uid, owner.uid, `${dir} belongs to the Asterisk user`)
  }
  t.match(log.lines.join('\n'), /created .*run\/asterisk/)
  const again = memoryLogger('dirs')
  await prepareAsteriskDirs(etc, owner, again)
  t.same(again.lines, [], 'a second start has nothing to do')
})

t.test('permits: owner, then group, then others, as the kernel decides', async (t) => {
  const who = { uid: 100, groups: [101, 5] }
  t.ok(permits({ mode: 0o100600, uid: 100, gid: 0 }, who, 4), 'owner with u+r')
  t.notOk(
    permits({ mode: 0o100064, uid: 100, gid: 101 }, who, 4),
    'the owner bits decide for the owner, even when group and others may read',
  )
  t.ok(permits({ mode: 0o100640, uid: 0, gid: 5 }, who, 4), 'a supplementary group counts')
  t.notOk(permits({ mode: 0o100600, uid: 1000, gid: 1000 }, who, 4), "someone else's 0600 file")
  t.ok(permits({ mode: 0o100644, uid: 1000, gid: 1000 }, who, 4), 'world-readable')
  t.notOk(permits({ mode: 0o40750, uid: 1000, gid: 1000 }, who, 1), "a directory others can't enter")
})

t.test("config files Asterisk's user can't read are problems that name the file, its mode and owner", async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pd-access-'))
  t.teardown(() => void import('node:fs').then((fs) => fs.rmSync(dir, { recursive: true, force: true })))
  chmodSync(dir, 0o755)
  const me = { uid: process.getuid!(), gid: process.getgid!() }
  const write = (name: string, mode: number) => {
    writeFileSync(join(dir, name), '[x]\n')
    chmodSync(join(dir, name), mode)
  }
  write('pjsip_endpoint.conf', 0o600)
  write('pjsip.conf', 0o644)
  write('extensions.conf', 0o640)
  write('websms.conf', 0o600)
  // Asterisk's user is someone else, in this files' group.
  const asterisk = { name: 'asterisk', uid: me.uid + 1, gid: me.gid, groups: [me.gid] }
  const problems = await unreadableByAsterisk(dir, asterisk)
  t.equal(problems.length, 1, problems.join('\n'))
  t.match(
    problems[0],
    `Asterisk runs as user asterisk (uid ${asterisk.uid}, gid ${me.gid}) and can't read ${join(dir, 'pjsip_endpoint.conf')} (mode 0600, owner ${me.uid}:${me.gid}); make it readable for that user`,
  )
  t.same(
    await unreadableByAsterisk(dir, { ...asterisk, gid: me.gid + 1, groups: [me.gid + 1] }).then((p) => p.length),
    2,
    'outside the group, the 0640 file is unreadable too',
  )
  chmodSync(dir, 0o750)
  t.match(await unreadableByAsterisk(dir, { ...asterisk, gid: me.gid + 1, groups: [me.gid + 1] }), [
    /can't enter .* \(mode 0750/,
  ])
})
