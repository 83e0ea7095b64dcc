import t from 'tap'
import { mkdtemp, readdir, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { formatBans, liftBan, listBans } from '../../src/ban/cli.ts'
import { liftDir, saveBans, type Saved } from '../../src/ban/store.ts'

const NOW = Date.parse('2026-12-01T10:00:00Z')
const saved: Saved = {
  version: 1,
  mode: 'nft',
  savedAt: NOW,
  records: [],
  bans: [
    {
      address: '2001:db8::7',
      reason: 'unknown account admin',
      count: 12,
      strike: 2,
      since: NOW - 1000,
      until: NOW + 80 * 60_000,
    },
    {
      address: '203.0.113.5',
      reason: 'wrong password for alice',
      count: 10,
      strike: 1,
      since: NOW - 1000,
      until: NOW + 20 * 60_000,
    },
    { address: '198.51.100.1', reason: 'over', count: 10, strike: 1, since: NOW - 9000, until: NOW - 1 },
  ],
}

t.test('the list: active bans, soonest to end first, and how they are enforced', async (t) => {
  t.equal(
    formatBans(saved, NOW),
    [
      'address      until                 failures  ban  reason',
      '203.0.113.5  2026-12-01T10:20:00Z  10        1st  wrong password for alice',
      '2001:db8::7  2026-12-01T11:20:00Z  12        2nd  unknown account admin',
      '2 active, enforced by nftables',
      '',
    ].join('\n'),
  )
  t.equal(formatBans(undefined, NOW), 'no active bans\n', 'no file yet')
  t.equal(formatBans({ ...saved, bans: [saved.bans[2]!] }, NOW), 'no active bans\n', 'only ended ones')
})

t.test('lifting asks the running service, and says when none took the request', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'pd-bans-cli-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const file = join(dir, 'bans.json')
  await saveBans(file, { ...saved, bans: saved.bans.map((b) => ({ ...b, until: Date.now() + 60_000 })) })
  t.match(await listBans(file), /203\.0\.113\.5/)
  await t.rejects(liftBan(file, '192.0.2.1', 100), /192\.0\.2\.1 is not banned/)
  await t.rejects(liftBan(file, 'example.com', 100), /expected an IPv4 or IPv6 address, got `example.com`/)
  const r = await liftBan(file, '2001:DB8:0::7', 200)
  t.same(r, { address: '2001:db8::7', lifted: false }, 'in its one spelling; nobody took it')
  t.same(await readdir(liftDir(file)), ['2001:db8::7'], 'the request waits for the next start')
})
