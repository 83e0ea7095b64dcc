import t from 'tap'
import { mkdirSync, mkdtempSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { prepareAsteriskDirs } from '../src/asterisk-dirs.ts'
import { memoryLogger } from '../src/log.ts'

t.test("Asterisk's writable directories are made and given to its user", async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'pd-dirs-'))
  t.teardown(() => void import('node:fs').then((fs) => fs.rmSync(root, { recursive: true, force: true })))
  const etc = join(root, 'etc')
  mkdirSync(etc)
  const d = (n: string) => join(root, n)
  writeFileSync(join(etc, 'asterisk.conf'), `[directories]\nastetcdir => ${etc}\nastrundir => ${d('run/asterisk')}\nastspooldir => ${d('spool')}\nastlogdir => ${d('log')}\nastvarlibdir => ${d('lib')}\nastdbdir => ${d('lib/db')}\nastcachedir => ${d('cache')}\nastmoddir => ${d('modules')}\n`)
  // Root can hand directories to another user; anyone else can only check they are made.
  const owner = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : undefined
  const log = memoryLogger('dirs')
  const made = await prepareAsteriskDirs(etc, owner, log)
  t.same(made.sort(), ['run/asterisk', 'spool', 'log', 'lib', 'lib/db', 'cache'].map(d).sort(), 'the writable ones, not modules or config')
  for (const dir of made) {
    t.ok(statSync(dir).isDirectory(), dir)
    if (owner) t.equal(statSync(dir).uid, owner.uid, `${dir} belongs to the Asterisk user`)
  }
  t.match(log.lines.join('\n'), /created .*run\/asterisk/)
  const again = memoryLogger('dirs')
  await prepareAsteriskDirs(etc, owner, again)
  t.same(again.lines, [], 'a second start has nothing to do')
})
