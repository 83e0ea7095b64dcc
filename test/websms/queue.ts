import t, { type Test } from 'tap'
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { memoryLogger } from '../../src/base/log.ts'
import {
  openQueue,
  retryDelay,
  type LanePolicy,
  type Outcome,
  type QueueItem,
  type QueueOptions,
} from '../../src/websms/queue.ts'

const fast: LanePolicy = { baseMs: 5, maxMs: 20, maxAgeMs: Infinity }
const files = (dir: string) =>
  readdirSync(dir)
    .filter((f) => f.endsWith('.json'))
    .sort()

/** Waits for `cond`, failing after a generous bound instead of hanging. */
async function until(cond: () => boolean, what: string): Promise<void> {
  for (const deadline = Date.now() + 10_000; !cond(); await new Promise((r) => setTimeout(r, 5))) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
  }
}

interface Payload {
  n: number
  text?: string
}

function setup(
  t: Test,
  dir: string,
  deliver: QueueOptions<Payload>['deliver'],
  more: Partial<QueueOptions<Payload>> = {},
) {
  const log = memoryLogger('queue')
  const gaveUp: Array<[number, string]> = []
  const opened = openQueue<Payload>({
    dir,
    log,
    deliver,
    policy: () => fast,
    giveUp: (item, reason) => void gaveUp.push([item.payload.n, reason]),
    ...more,
  })
  void opened.then((q) => t.teardown(() => q.close()))
  return { opened, log, gaveUp }
}

t.test('each text is on disk before add() returns, and gone once delivered', async (t) => {
  const dir = join(t.testdir(), 'spool')
  let release = () => {}
  const held = new Promise<void>((r) => (release = r))
  const delivered: number[] = []
  const { opened } = setup(t, dir, async (item) => {
    await held
    delivered.push(item.payload.n)
    return { done: true }
  })
  const q = await opened
  t.equal((statSync(dir).mode & 0o777).toString(8), '700', 'the spool is private')
  const item = await q.add('asterisk', { n: 1, text: 'Hej 👋\nrad två' })
  const [name] = files(dir)
  t.equal(name, `${item.id}.json`)
  t.equal((statSync(join(dir, name!)).mode & 0o777).toString(8), '600', 'so is each text')
  t.same(
    JSON.parse(readFileSync(join(dir, name!), 'utf8')).payload,
    { n: 1, text: 'Hej 👋\nrad två' },
    'Unicode and newlines kept',
  )
  release()
  await q.idle()
  t.same(delivered, [1])
  t.same(files(dir), [])
})

t.test('a lane delivers in order and waits while its head fails; other lanes go on', async (t) => {
  const dir = join(t.testdir(), 'spool')
  const seen: string[] = []
  let down = true
  const { opened, log } = setup(t, dir, async (item) => {
    seen.push(`${item.lane}:${item.payload.n}`)
    if (item.lane === 'asterisk' && down) return { retry: 'Asterisk did not answer' }
    return { done: true }
  })
  const q = await opened
  for (const n of [1, 2, 3]) await q.add('asterisk', { n })
  await q.add('itsp:elks', { n: 9 })
  await until(() => seen.filter((s) => s === 'asterisk:1').length >= 3, 'three tries of the head')
  t.notOk(seen.includes('asterisk:2'), 'nothing overtakes the head')
  t.ok(seen.includes('itsp:elks:9'), 'another lane is not held up')
  t.match(
    log.lines.join('\n'),
    /WARN  queue: delivery failed; retrying in 0 s lane=asterisk id=\S+ attempts=1 reason="Asterisk did not answer"/,
  )
  const onDisk = JSON.parse(readFileSync(join(dir, files(dir)[0]!), 'utf8')) as QueueItem<Payload>
  t.ok(onDisk.attempts >= 1, 'attempts are kept on disk')
  t.equal(onDisk.lastError, 'Asterisk did not answer')
  down = false
  q.flush()
  await q.idle()
  t.same(
    seen.filter((s) => s.startsWith('asterisk:')).filter((s, i, a) => a.indexOf(s) === i),
    ['asterisk:1', 'asterisk:2', 'asterisk:3'],
  )
})

t.test('nothing is lost across a restart, and the order holds', async (t) => {
  const dir = join(t.testdir(), 'spool')
  const first = setup(t, dir, async () => ({ retry: 'down' }))
  const q1 = await first.opened
  for (const n of [1, 2, 3, 4, 5]) await q1.add('asterisk', { n })
  await q1.close()
  await t.rejects(q1.add('asterisk', { n: 6 }), /queue is closed/)
  writeFileSync(join(dir, '.leftover.json.abc.tmp'), '{"half')
  const order: number[] = []
  const second = setup(t, dir, async (item) => {
    order.push(item.payload.n)
    return { done: true }
  })
  const q2 = await second.opened
  await q2.idle()
  t.same(order, [1, 2, 3, 4, 5])
  t.match(second.log.lines.join('\n'), /resuming 5 queued text\(s\)/)
  t.same(readdirSync(dir), [], 'temp files of writes never acknowledged are cleared too')
})

t.test('a file that is not a queue item is moved aside, not fatal', async (t) => {
  const dir = t.testdir({ '20260101T000000000Z-000000-aaaaaa.json': '{"not": "an item"}', 'other.json': 'garbage' })
  const { opened, log } = setup(t, dir, async () => ({ done: true }))
  const q = await opened
  t.equal(q.size(), 0)
  t.same(readdirSync(dir).sort(), ['20260101T000000000Z-000000-aaaaaa.json.bad', 'other.json.bad'])
  t.match(
    log.lines.join('\n'),
    /ERROR queue: queued file \S+other\.json can't be read .*; moved aside as other\.json\.bad/,
  )
})

t.test('a final failure, and a text that grew too old, are handed to giveUp and removed', async (t) => {
  const dir = join(t.testdir(), 'spool')
  let clock = 1_000_000
  const outcomes: Record<number, Outcome> = {
    1: { fail: 'ITSP answered 400: bad number' },
    2: { retry: 'ITSP answered 503' },
    3: { done: true },
  }
  const { opened, gaveUp } = setup(
    t,
    dir,
    async (item) => {
      clock += 60_000
      return outcomes[item.payload.n]!
    },
    { now: () => clock, policy: () => ({ ...fast, maxAgeMs: 150_000 }) },
  )
  const q = await opened
  for (const n of [1, 2, 3]) await q.add('itsp:x', { n })
  await q.idle()
  t.same(gaveUp, [
    [1, 'ITSP answered 400: bad number'],
    [2, 'ITSP answered 503; gave up after 3 attempts in 180 s'],
  ])
  t.same(files(dir), [])
})

t.test('a deliver that throws is retried like a failure', async (t) => {
  const dir = join(t.testdir(), 'spool')
  let calls = 0
  const { opened, log } = setup(t, dir, async () => {
    if (++calls === 1) throw new Error('boom')
    return { done: true }
  })
  const q = await opened
  await q.add('a', { n: 1 })
  await q.idle()
  t.equal(calls, 2)
  t.match(log.lines.join('\n'), /reason=boom/)
})

t.test('retry delays double up to the cap', async (t) => {
  const p = { baseMs: 1000, maxMs: 60_000, maxAgeMs: Infinity }
  t.same(
    [1, 2, 3, 4, 7, 20].map((n) => retryDelay(p, n)),
    [1000, 2000, 4000, 8000, 60_000, 60_000],
  )
})
