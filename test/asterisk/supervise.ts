// Supervisor logic against a stand-in process (a real child, not a mock of spawn); the real
// Asterisk side of start/stop is in test/run.ts.
import t from 'tap'
import { execa } from 'execa'
import type { Child } from '../../src/asterisk/process.ts'
import { memoryLogger } from '../../src/base/log.ts'
import { supervise, type SuperviseDeps } from '../../src/asterisk/supervise.ts'
import { waitFor } from '../helpers/wait-for.ts'

type Behaviour = 'crash' | 'segfault' | 'serve' | 'stubborn' | 'booting'

/**
 * A process that exits 3 at once ('crash'), runs until SIGTERM ('serve'), ignores SIGTERM
 * ('stubborn'), or runs until SIGTERM but takes a minute to say it is up ('booting'); the others
 * say 'up' when their handlers are in place.
 */
const readyOf = new WeakMap<Child, Promise<void>>()
function standIn(b: Behaviour): Child {
  const code = {
    crash: 'process.exit(3)',
    segfault: "process.kill(process.pid, 'SIGSEGV')",
    serve: "process.on('SIGTERM', () => process.exit(0)); console.log('up'); setInterval(() => {}, 1000)",
    stubborn:
      "process.on('SIGTERM', () => {}); process.on('SIGINT', () => {}); console.log('up'); setInterval(() => {}, 1000)",
    booting: "process.on('SIGTERM', () => process.exit(0)); setTimeout(() => console.log('up'), 60_000)",
  }[b]
  const sub = execa(process.execPath, ['-e', code], { reject: false })
  const child: Child = {
    pid: sub.pid,
    exited: sub.then((r) => ({ code: r.exitCode ?? null, signal: r.signal ?? null })),
    kill: (s = 'SIGTERM') => void sub.kill(s),
  }
  readyOf.set(child, new Promise((r) => sub.stdout?.once('data', () => r())))
  return child
}

const fastPolicy = { firstDelayMs: 5, maxDelayMs: 40, resetAfterMs: 60_000, maxCrashes: 5, windowMs: 60_000 }

function deps(script: Behaviour[], extra: Partial<SuperviseDeps> = {}) {
  const log = memoryLogger('supervise')
  const started: Child[] = []
  const d: SuperviseDeps = {
    start: () => {
      const c = standIn(script[Math.min(started.length, script.length - 1)]!)
      started.push(c)
      return c
    },
    // As the real one: settles once the child is gone, ready or not.
    waitReady: (c, gone) =>
      Promise.race([
        readyOf.get(c)!,
        new Promise<void>((_, fail) => gone.addEventListener('abort', () => fail(new Error('exited')))),
      ]),
    drain: async () => started.at(-1)?.kill('SIGTERM'),
    stopNow: async () => started.at(-1)?.kill('SIGINT'),
    log,
    graceMs: 300,
    killAfterMs: 200,
    policy: fastPolicy,
    ...extra,
  }
  return { d, log, started }
}

const alive = (pid: number | undefined) => {
  try {
    process.kill(pid!, 0)
    return true
  } catch {
    return false
  }
}

t.test('a crash is restarted with a growing delay, and a crash loop ends run non-zero', async (t) => {
  const { d, log, started } = deps(['crash'])
  const code = await supervise(d).done
  t.equal(code, 3, "Asterisk's exit code is passed through")
  t.equal(started.length, 5)
  const lines = log.lines.join('\n')
  t.match(lines, /restarting in 5 ms[\s\S]*restarting in 10 ms[\s\S]*restarting in 20 ms[\s\S]*restarting in 40 ms/)
  t.match(lines, /giving up: 5 crashes within 1 minutes/)
})

t.test('a crash loop of signals ends run with 128+n, as README promises', async (t) => {
  const { d, log } = deps(['segfault'])
  const code = await supervise(d).done
  t.equal(code, 128 + 11, 'SIGSEGV is signal 11')
  t.match(log.lines.join('\n'), /exited unexpectedly \(signal SIGSEGV\)[\s\S]*giving up/)
})

t.test('after a crash the next Asterisk is supervised again', async (t) => {
  const { d, started } = deps(['crash', 'serve'])
  const s = supervise(d)
  await waitFor('the restart', () => started.length >= 2)
  await s.stop('test')
  t.equal(await s.done, 0)
  t.notOk(alive(started[1]!.pid), 'the restarted child is gone')
})

t.test('stop drains, and a drained Asterisk exits 0 without force', async (t) => {
  const ready: number[] = []
  const { d, log, started } = deps(['serve'], { onReady: (_c, ms) => ready.push(ms) })
  const s = supervise(d)
  await waitFor('readiness', () => ready.length > 0)
  await s.stop('SIGTERM')
  t.equal(await s.done, 0)
  t.notOk(alive(started[0]!.pid))
  t.notMatch(log.lines.join('\n'), /stopping Asterisk now|killing/)
})

t.test('an Asterisk that ignores the drain is stopped hard, then killed; nothing is left', async (t) => {
  const ready: number[] = []
  const { d, log, started } = deps(['stubborn'], { onReady: (_c, ms) => ready.push(ms) })
  const s = supervise(d)
  await waitFor('readiness', () => ready.length > 0)
  await s.stop('SIGTERM')
  t.equal(await s.done, 0)
  t.notOk(alive(started[0]!.pid), 'no process left')
  const lines = log.lines.join('\n')
  t.match(lines, /calls still up after 0\.3 s; stopping Asterisk now/)
  t.match(lines, /killing it/)
  t.match(lines, /Asterisk stopped \(signal SIGKILL\)/)
})

t.test('a stop while Asterisk boots signals it instead of draining, and it never counts as ready', async (t) => {
  const ready: number[] = []
  let drained = false
  const { d, log, started } = deps(['booting'], {
    onReady: (_c, ms) => ready.push(ms),
    drain: async () => void (drained = true),
  })
  const s = supervise(d)
  await waitFor('the start', () => started.length >= 1)
  await s.stop('SIGTERM')
  t.equal(await s.done, 0)
  t.notOk(alive(started[0]!.pid), 'no process left')
  t.notOk(drained, 'no drain request: the remote console may not exist yet')
  t.same(ready, [])
  const lines = log.lines.join('\n')
  t.match(lines, /stopping Asterisk \(SIGTERM\) before it finished booting: no call is up; sending it SIGTERM/)
  // Exit 0 from its handler, or SIGTERM itself if the signal came before the handler was set.
  t.match(lines, /Asterisk stopped \((code 0|signal SIGTERM)\)/)
  t.notMatch(lines, /calls still up|killing/)
})

t.test('a stop during the restart delay ends at once', async (t) => {
  const { d, log, started } = deps(['crash'], { policy: { ...fastPolicy, firstDelayMs: 60_000, maxDelayMs: 60_000 } })
  const s = supervise(d)
  await waitFor('the crash and the restart delay', () => log.lines.some((l) => /restarting in 60000 ms/.test(l)))
  await s.stop('SIGTERM')
  t.equal(await s.done, 0)
  t.equal(started.length, 1, 'not restarted after the stop')
})

t.test('readiness is logged with the boot time', async (t) => {
  const ready: number[] = []
  const { d, log } = deps(['serve'], { onReady: (_c, ms) => ready.push(ms) })
  const s = supervise(d)
  await waitFor('readiness', () => ready.length > 0)
  await s.stop('test')
  t.match(log.lines.join('\n'), /Asterisk fully booted in \d+ ms/)
})
