import t, { type Test } from 'tap'
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdir, readFile, utimes, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { execa } from 'execa'
import { LOCK_FILE, lockSpool, STALE_AFTER_MS, type SpoolLock } from '../../src/mail/spool-lock.ts'

const root = t.testdir({})
let count = 0
const newSpool = async () => {
  const dir = join(root, `spool-${++count}`)
  await mkdir(dir)
  return dir
}
const taken = (lock: SpoolLock) => ('release' in lock ? lock : undefined)

/** A process that takes the spool's lock the way a `minivm-send --flush` does, and holds it. */
async function otherHolder(t: Test, dir: string) {
  const module = new URL('../../src/mail/spool-lock.ts', import.meta.url).pathname
  const child = spawn(
    process.execPath,
    [
      '--input-type=module',
      '-e',
      `const { lockSpool } = await import(${JSON.stringify(module)}); const l = await lockSpool(${JSON.stringify(dir)}); console.log('release' in l ? 'locked' : 'busy'); setInterval(() => {}, 1e6)`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  )
  t.teardown(() => child.kill('SIGKILL'))
  const said = await new Promise<string>((resolve, reject) => {
    child.stdout.once('data', (d: Buffer) => resolve(d.toString().trim()))
    child.once('exit', (code) => reject(new Error(`the lock holder exited with ${code}`)))
  })
  if (said !== 'locked') throw new Error(`the lock holder said ${said}`)
  return child
}

t.test('a lock held by a live flush in another process is respected until that process dies', async (t) => {
  const dir = await newSpool()
  const child = await otherHolder(t, dir)
  const busy = await lockSpool(dir)
  t.match(busy, { busy: { pid: child.pid } })
  const exited = new Promise((resolve) => child.once('exit', resolve))
  child.kill('SIGKILL')
  await exited
  const stale: string[] = []
  const mine = taken(await lockSpool(dir, { onStale: (_holder, why) => stale.push(why) }))
  t.ok(mine, 'taken over once its holder is gone')
  t.same(stale, ['holder is gone'])
  await mine?.release()
  t.notOk(existsSync(join(dir, LOCK_FILE)), 'released')
})

t.test('one holder at a time inside one process too', async (t) => {
  const dir = await newSpool()
  const first = taken(await lockSpool(dir))
  t.ok(first)
  t.match(await lockSpool(dir), { busy: { pid: process.pid } }, 'a second flush in this process waits its turn')
  await first?.release()
  const again = taken(await lockSpool(dir))
  t.ok(again, 'free again once released')
  await again?.release()
})

t.test('locks that outlived their holder are taken over', async (t) => {
  // Each is what a new container finds on the volume, where run has the PID an earlier run had.
  const sleeper = execa('sleep', ['600'], { reject: false })
  t.teardown(() => sleeper.kill('SIGKILL'))
  const hourAgo = new Date(Date.now() - 3_600_000)
  const cases: Array<[string, string, Date | undefined, RegExp]> = [
    ['this process’s own PID, which it does not hold', String(process.pid), undefined, /left by this process/],
    ['a live PID, in a lock nobody touched for an hour', String(sleeper.pid), hourAgo, /untouched for \d+ s/],
    [
      'a live PID that started after the lock was taken',
      JSON.stringify({ pid: sleeper.pid, start: '1' }),
      undefined,
      /PID now belongs to another process/,
    ],
    ['a PID from before a reboot', JSON.stringify({ pid: sleeper.pid, boot: 'an-earlier-boot' }), undefined, /reboot/],
    ['a dead PID', String((await execa('sh', ['-c', 'echo $$'])).stdout), undefined, /holder is gone/],
    ['an unreadable lock', 'not a lock', undefined, /unreadable/],
  ]
  for (const [what, content, mtime, why] of cases) {
    const dir = await newSpool()
    const file = join(dir, LOCK_FILE)
    await writeFile(file, content)
    if (mtime) await utimes(file, mtime, mtime)
    const stale: string[] = []
    const lock = taken(await lockSpool(dir, { onStale: (_h, w) => stale.push(w) }))
    t.ok(lock, what)
    t.match(stale, [why], what)
    t.match(JSON.parse(await readFile(file, 'utf8')), { pid: process.pid }, `${what}: now this process's`)
    await lock?.release()
  }
  t.ok(STALE_AFTER_MS < 3_600_000)
})

t.test('a fresh lock of a live process that is its holder is respected', async (t) => {
  // A bare PID, as earlier versions wrote: nothing to tell it from its holder but its age.
  const sleeper = execa('sleep', ['600'], { reject: false })
  t.teardown(() => sleeper.kill('SIGKILL'))
  const dir = await newSpool()
  await writeFile(join(dir, LOCK_FILE), String(sleeper.pid))
  t.match(await lockSpool(dir), { busy: { pid: sleeper.pid } })
})
