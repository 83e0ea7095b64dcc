// The text store on a real temp dir: what is acknowledged survives a reopen, deliveries are
// journaled, leftovers of a crash are cleaned up, bodies keep their bytes.
import t, { type Test } from 'tap'
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { memoryLogger } from '../../src/base/log.ts'
import { journalLine, openStore, readStoreDir } from '../../src/texts/store.ts'

const dir = async (t: Test) => {
  const d = await mkdtemp(join(tmpdir(), 'pd-store-'))
  t.teardown(() => rm(d, { recursive: true, force: true }))
  return d
}

const BODIES = [
  Buffer.from('plain'),
  Buffer.from('Grüße 😀\r\n'),
  Buffer.from([0xff, 0xfe, 0x00, 0x41, 0x0a]),
  Buffer.from('"},{"id":"x'),
]

t.test('texts and their deliveries survive a reopen; bodies keep their bytes', async (t) => {
  const d = await dir(t)
  const log = memoryLogger()
  const s = await openStore({ dir: d, log })
  const added = []
  for (const [i, body] of BODIES.entries())
    added.push(await s.add({ user: i % 2 ? 'bob' : 'alice', to: '+1', from: '<sip:+2@x>', body, time: 1000 + i }))
  t.same(
    added.map((a) => a.id),
    [...added.map((a) => a.id)].sort(),
    'ids sort in the order texts came',
  )
  await s.delivered(added[0]!.id, 'sip:alice@127.0.0.1:5000', 2000)
  await s.delivered(added[1]!.id, 'sip:bob@127.0.0.1:5001', 2001)
  await s.delivered(added[1]!.id, 'sip:bob@127.0.0.1:5002', 2002)
  await s.undelivered(added[1]!.id, 'sip:bob@127.0.0.1:5002')
  await s.remove(added[2]!.id)
  await s.close()

  const again = await openStore({ dir: d, log })
  t.same(again.users().sort(), ['alice', 'bob'])
  t.same(
    again.texts('alice').map((x) => x.text.body),
    [BODIES[0]],
    'the removed text is gone',
  )
  t.same(
    again.texts('bob').map((x) => x.text.body),
    [BODIES[1], BODIES[3]],
  )
  t.same([...again.get(added[0]!.id)!.deliveredTo], [['sip:alice@127.0.0.1:5000', 2000]])
  t.same(
    [...again.get(added[1]!.id)!.deliveredTo],
    [['sip:bob@127.0.0.1:5001', 2001]],
    'the undone delivery stays undone',
  )
  t.equal(
    await readFile(join(d, 'delivered.log'), 'utf8'),
    journalLine('d', added[0]!.id, 'sip:alice@127.0.0.1:5000', 2000) +
      journalLine('d', added[1]!.id, 'sip:bob@127.0.0.1:5001', 2001),
    'the journal is compacted to what matters',
  )
  await again.close()
  t.same((await readStoreDir(d)).length, 3, 'readStoreDir sees the same texts')
})

t.test('the journal starts afresh once no text is left', async (t) => {
  const d = await dir(t)
  const s = await openStore({ dir: d, log: memoryLogger() })
  const a = await s.add({ user: 'bob', to: '+1', from: '<sip:+2@x>', body: Buffer.from('x'), time: 1 })
  await s.delivered(a.id, 'call-id:abc@127.0.0.1', 2)
  t.not(await readFile(join(d, 'delivered.log'), 'utf8'), '')
  await s.remove(a.id)
  t.equal(await readFile(join(d, 'delivered.log'), 'utf8'), '')
  await s.close()
})

t.test('an unacknowledged temp file is removed, an unreadable text moved aside and said so', async (t) => {
  const d = await dir(t)
  await writeFile(join(d, '.20260101T000000000Z-000000-abcdef.json.123.tmp'), '{"half')
  await writeFile(join(d, '20260101T000000000Z-000000-abcdef.json'), 'not json')
  const log = memoryLogger()
  const s = await openStore({ dir: d, log })
  t.equal(s.size(), 0)
  t.same((await readdir(d)).sort(), ['20260101T000000000Z-000000-abcdef.json.bad', 'delivered.log'])
  t.match(log.lines.join('\n'), /can't be read .*moved aside/)
  await s.close()
})

t.test('a contact URI with white space would break the journal: refused', async (t) => {
  t.throws(() => journalLine('d', 'id', 'sip:a b@x', 1), RangeError)
})
