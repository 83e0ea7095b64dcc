import t from 'tap'
import { BanPolicy, banLength, duration, type PolicyConfig } from '../../src/ban/policy.ts'

const cfg: PolicyConfig = {
  threshold: 10,
  windowMs: 600_000,
  banMs: 1_200_000,
  repeatFactor: 4,
  maxBanMs: 7 * 86_400_000,
  maxTracked: 100,
  maxBans: 50,
}
const A = '203.0.113.5'

/** `n` failures from `address`, one a second from `start`; the last outcome. */
function fail(p: BanPolicy, address: string, n: number, start = 0) {
  let out
  for (let i = 0; i < n; i++) out = p.failure(address, 'wrong password for alice', start + i * 1000)
  return out
}

t.test('a scanner is banned at the threshold, within its first seconds', async (t) => {
  const p = new BanPolicy(cfg)
  t.equal(fail(p, A, 9), undefined, 'nine failures: not yet')
  const out = p.failure(A, 'unknown account 100', 9000)
  t.ok(out, 'the tenth bans')
  t.match(out!.ban, { address: A, count: 10, strike: 1, since: 9000, until: 9000 + 1_200_000 })
  t.equal(out!.ban.reason, 'unknown account 100', 'the reason is the last failure')
  t.ok(p.isBanned(A))
  t.equal(p.failure(A, 'x', 10_000), undefined, 'a banned address is not banned again')
})

t.test('a user who mistypes twice and then logs in is never banned', async (t) => {
  const p = new BanPolicy(cfg)
  for (let round = 0; round < 20; round++) {
    fail(p, A, 2, round * 10_000)
    p.success(A)
  }
  t.notOk(p.isBanned(A), '40 mistakes, each pair followed by a login')
  t.equal(fail(p, A, 9, 500_000), undefined, 'and the count starts from zero after a login')
})

t.test('failures older than the window do not count', async (t) => {
  const p = new BanPolicy(cfg)
  fail(p, A, 9, 0)
  t.equal(p.failure(A, 'x', 600_001), undefined, 'the first of the nine fell out of the window')
  t.ok(p.failure(A, 'x', 600_002), 'nine in the window again (8 old + 1 new + this): banned')
})

t.test('repeat offenders are banned longer, up to the cap', async (t) => {
  t.same(
    [1, 2, 3, 4, 5, 6, 7].map((s) => banLength(cfg, s) / 60_000),
    [20, 80, 320, 1280, 5120, 10080, 10080],
  )
  const p = new BanPolicy(cfg)
  const first = fail(p, A, 10)!.ban
  t.same(
    p.expire(first.until).map((b) => b.address),
    [A],
    'the ban ends on time',
  )
  t.notOk(p.isBanned(A))
  const second = fail(p, A, 10, first.until + 1000)!.ban
  t.equal(second.strike, 2)
  t.equal(second.until - second.since, 4 * (first.until - first.since), 'the second ban is four times longer')
  p.expire(second.until)
  const later = second.until + cfg.maxBanMs + 1
  p.expire(later)
  t.equal(fail(p, A, 10, later)!.ban.strike, 1, 'a week after its last ban the address starts over')
})

t.test('lifting gives a clean slate', async (t) => {
  const p = new BanPolicy(cfg)
  fail(p, A, 10)
  t.equal(p.lift(A)?.address, A)
  t.equal(p.lift(A), undefined, 'lifting twice finds nothing')
  t.equal(fail(p, A, 10, 5000)!.ban.strike, 1, 'not counted as a repeat')
})

t.test('memory stays bounded under a flood of distinct addresses', async (t) => {
  const p = new BanPolicy({ ...cfg, maxTracked: 1000, maxBans: 100 })
  for (let i = 0; i < 100_000; i++) p.failure(`2001:db8::${i.toString(16)}`, 'x', i)
  t.equal(p.tracked(), 1000, 'the addresses seen first are forgotten')
  for (let i = 0; i < 500; i++) fail(p, `10.0.${i >> 8}.${i & 255}`, 10, 200_000 + i)
  t.equal(p.bans().length, 100, 'bans are capped')
  const out = fail(p, '10.9.9.9', 10, 300_000)!
  t.ok(out.evicted, 'a new ban past the cap evicts one')
  t.equal(out.evicted!.until, Math.min(...p.bans().map((b) => b.until), out.evicted!.until), 'the one ending soonest')
  t.ok(p.snapshot().records.length <= 1000, 'repeat records are capped too')
})

t.test('a snapshot restores what is still in force', async (t) => {
  const p = new BanPolicy(cfg)
  fail(p, A, 10)
  p.expire(2_000_000)
  fail(p, A, 10, 2_000_000)
  fail(p, '198.51.100.7', 10, 2_000_000)
  const q = new BanPolicy(cfg)
  q.restore(JSON.parse(JSON.stringify(p.snapshot())), 2_100_000)
  t.same(
    q
      .bans()
      .map((b) => b.address)
      .sort(),
    ['198.51.100.7', A],
  )
  t.equal(q.bans().find((b) => b.address === A)?.strike, 2)
  const r = new BanPolicy(cfg)
  r.restore(p.snapshot(), 2_000_000 + 80 * 60_000)
  t.same(
    r.bans().map((b) => b.address),
    [A],
    'bans over by then are dropped',
  )
  t.equal(r.nextExpiry(), 2_000_000 + 9000 + 80 * 60_000)
})

t.test('ban lengths read as people say them', async (t) => {
  t.same([2_000, 1_200_000, 4_800_000, 19_200_000, 604_800_000].map(duration), [
    '2 s',
    '20 min',
    '80 min',
    '5 h',
    '7 days',
  ])
})
