// When a stored text is delivered on, dropped as expired or done with: the rule for several phones.
import t from 'tap'
import { fate, usable } from '../../src/texts/deliver.ts'
import type { TextState } from '../../src/texts/store.ts'

const policy = { expiryMs: 10_000, fanoutMs: 3_000, confirmMs: 1_000 }
const state = (time: number, deliveredTo: Array<[string, number]> = []): TextState => ({
  text: { id: 'x', user: 'bob', to: '+1', from: '<sip:+2@x>', body: Buffer.from('hi'), time },
  deliveredTo: new Map(deliveredTo),
})

t.test('a text no phone has waits until it expires', async (t) => {
  t.equal(fate(state(0), 9_999, policy), 'keep')
  t.equal(fate(state(0), 10_000, policy), 'expired')
})

t.test("once a phone has it, the user's other phones get it for the fan-out time", async (t) => {
  const s = state(0, [['sip:a', 20_000]])
  t.equal(fate(s, 22_999, policy), 'keep', 'a phone that comes online meanwhile still gets it')
  t.equal(fate(s, 23_000, policy), 'done')
  t.equal(fate(s, 50_000, policy), 'done', 'a delivered text never expires with a notice')
})

t.test('kept until the last send is confirmed, even with no fan-out', async (t) => {
  const s = state(0, [
    ['sip:a', 1_000],
    ['sip:b', 5_000],
  ])
  t.equal(fate(s, 5_999, { ...policy, fanoutMs: 0 }), 'keep', 'sip:b may still prove unreachable')
  t.equal(fate(s, 6_000, { ...policy, fanoutMs: 0 }), 'done')
})

t.test('contacts that may get texts', async (t) => {
  for (const s of ['Reachable', 'NonQualified', 'Unknown', 'Updated']) t.ok(usable(s), s)
  for (const s of ['Unreachable', 'Removed']) t.notOk(usable(s), s)
})
