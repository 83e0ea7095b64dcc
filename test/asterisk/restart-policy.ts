import t from 'tap'
import { DEFAULT_POLICY, onCrash, type CrashHistory } from '../../src/asterisk/restart-policy.ts'

t.test('quick crashes back off 1 s doubling to 30 s', async (t) => {
  let h: CrashHistory = { crashes: [], streak: 0 }
  const delays: number[] = []
  // One crash every 2 minutes stays under 5 in 5 minutes, so the policy keeps restarting.
  for (let i = 0; i < 8; i++) {
    const d = onCrash(h, i * 120_000, 1_000)
    if (d.action !== 'restart') throw new Error(`gave up at crash ${i + 1}`)
    delays.push(d.delayMs)
    h = d.history
  }
  t.same(delays, [1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000])
})

t.test('a minute of uptime resets the delay', async (t) => {
  const d1 = onCrash({ crashes: [], streak: 5 }, 0, 60_000)
  t.same(d1.action === 'restart' && d1.delayMs, 1000)
  const d2 = onCrash({ crashes: [], streak: 5 }, 0, 59_999)
  t.same(d2.action === 'restart' && d2.delayMs, 30000)
})

t.test('5 crashes within 5 minutes give up', async (t) => {
  let h: CrashHistory = { crashes: [], streak: 0 }
  const actions: string[] = []
  for (let i = 0; i < 5; i++) {
    const d = onCrash(h, i * 10_000, 100_000)
    actions.push(d.action)
    h = d.history
    if (d.action === 'give-up') t.match(d.reason, /5 crashes within 5 minutes/)
  }
  t.same(
    actions,
    ['restart', 'restart', 'restart', 'restart', 'give-up'],
    'even when each run was long enough to reset the delay',
  )
  const spaced = onCrash({ crashes: [0, 1, 2, 3], streak: 0 }, DEFAULT_POLICY.windowMs, 100_000)
  t.equal(spaced.action, 'restart', 'crashes older than the window are forgotten')
  t.equal(spaced.history.crashes.length, 4)
})
