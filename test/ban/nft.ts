// The nftables scripts against the real nft, inside a network namespace the test makes.
import t from 'tap'
import { addScript, removeScript, runNft, setupScript, teardownScript } from '../../src/ban/nft.ts'
import { makeLab, netnsUnavailable, nftUnavailable } from '../helpers/netns.ts'

const skip = (await netnsUnavailable()) ?? (await nftUnavailable())
if (skip) t.plan(0, `skipped: ${skip}`)
else {
  const lab = await makeLab([])
  t.teardown(() => lab.remove())
  const nft = ['ip', 'netns', 'exec', lab.pbx, 'nft']
  const ruleset = () => lab.run(lab.pbx, ['nft', 'list', 'ruleset'])
  const now = Date.now()

  t.test('set-up replaces what an earlier run left, with the bans given', async (t) => {
    await runNft(nft, setupScript([{ address: '203.0.113.5', until: now + 3_600_000 }], now))
    await runNft(nft, setupScript([{ address: '2001:db8::7', until: now + 600_000 }], now))
    const rules = await ruleset()
    t.equal(rules.match(/table inet privatedial/g)?.length, 1, 'one table')
    t.notMatch(rules, /203\.0\.113\.5/, "the earlier run's ban is gone")
    t.match(rules, /elements = \{ 2001:db8::7 timeout 10m/)
    t.match(rules, /ip6 saddr @banned6 counter packets \d+ bytes \d+ drop/)
  })

  t.test('adding a ban that is there sets its new time; lifting one that is gone is no error', async (t) => {
    await runNft(nft, addScript([{ address: '2001:db8::7', until: now + 120_000 }], now).join('\n'))
    t.match(await ruleset(), /2001:db8::7 timeout 2m/)
    await runNft(nft, removeScript(['2001:db8::7', '198.51.100.9']).join('\n'))
    t.notMatch(await ruleset(), /2001:db8::7/)
  })

  t.test('an error names the command and what nft said', async (t) => {
    await t.rejects(
      runNft(nft, 'add element inet privatedial banned4 { not-an-address }'),
      /ip netns exec .* nft -f -: .*Error/,
    )
    await t.rejects(runNft(['pd-no-such-nft'], ''), /pd-no-such-nft is not installed/)
  })

  t.test('tear-down removes our table, and only ours, twice over', async (t) => {
    await lab.run(lab.pbx, ['nft', 'add', 'table', 'inet', 'someone-else'])
    await runNft(nft, teardownScript())
    await runNft(nft, teardownScript())
    const rules = await ruleset()
    t.notMatch(rules, /privatedial/)
    t.match(rules, /table inet someone-else/)
  })
}
