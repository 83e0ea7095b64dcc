import t from 'tap'
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { messagesIn, moveToFailed, spoolDirOf, spoolMessage } from '../../src/mail/spool.ts'

const root = t.testdir({})

t.test('queued messages are private files that sort by arrival; failed/ keeps their names', async (t) => {
  const spool = join(root, 'outbox')
  t.same(await messagesIn(spool), [], 'no spool yet: nothing waits')
  const later = await spoolMessage(spool, Buffer.from('second'), new Date(Date.UTC(2026, 0, 2)))
  const earlier = await spoolMessage(spool, Buffer.from('first'), new Date(Date.UTC(2026, 0, 1)))
  await writeFile(join(spool, '.flush.lock'), '1')
  await mkdir(join(spool, 'failed'), { recursive: true })
  t.same(await messagesIn(spool), [earlier, later], 'oldest first; the lock and failed/ are not messages')
  t.equal((await stat(earlier)).mode & 0o777, 0o600)
  t.equal((await stat(spool)).mode & 0o777, 0o700)

  const moved = await moveToFailed(spool, earlier)
  t.equal(moved, join(spool, 'failed', basename(earlier)))
  t.equal(await readFile(moved, 'utf8'), 'first')
  t.same(await messagesIn(spool), [later])
  t.same(await messagesIn(join(spool, 'failed')), [moved])
})

t.test('MINIVM_SPOOL_DIR picks the spool', async (t) => {
  t.equal(spoolDirOf({}), '/var/spool/asterisk/minivm-outbox', 'the documented default')
  t.equal(spoolDirOf({ MINIVM_SPOOL_DIR: '/srv/q' }), '/srv/q')
})
