import t from 'tap'
import { mkdtempSync, renameSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { memoryLogger } from '../../src/base/log.ts'
import { watchFiles } from '../../src/base/watch.ts'

/** Waits for the watcher to report, with a generous bound so a broken watcher fails instead of hanging. */
function nextBatch(batches: string[][], count: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const deadline = Date.now() + 10_000
    const poll = () =>
      batches.length >= count
        ? resolve()
        : Date.now() > deadline
          ? reject(new Error(`no change reported; got ${batches.length} batch(es)`))
          : setTimeout(poll, 20)
    poll()
  })
}

t.test('saves are reported as settled batches of files whose content changed', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pd-watch-'))
  const ep = join(dir, 'pjsip_endpoint.conf')
  const other = join(dir, 'extensions_local.conf')
  writeFileSync(ep, '[a]\n')
  writeFileSync(other, '[globals]\n')
  writeFileSync(join(dir, 'unwatched.conf'), '')
  const batches: string[][] = []
  const w = watchFiles({
    files: [ep, other],
    debounceMs: 100,
    log: memoryLogger('watch'),
    onChange: async (f) => void batches.push(f),
  })
  t.teardown(() => w.close())
  await w.ready

  // An editor's save: write a temp file, rename it over the original; then a second save.
  writeFileSync(join(dir, '.tmp'), '[a]\n[b]\n')
  renameSync(join(dir, '.tmp'), ep)
  writeFileSync(ep, '[a]\n[b]\n[c]\n')
  await nextBatch(batches, 1)
  await w.idle()
  t.same(batches, [[ep]], 'a burst of saves is one batch')

  writeFileSync(join(dir, 'unwatched.conf'), 'x')
  writeFileSync(ep, '[a]\n[b]\n[c]\n')
  await new Promise((r) => setTimeout(r, 400))
  await w.idle()
  t.equal(batches.length, 1, 'same content and unwatched files are not reported')

  writeFileSync(other, '[globals]\nX=1\n')
  writeFileSync(ep, '[a]\n')
  await nextBatch(batches, 2)
  t.same(batches[1]!.sort(), [ep, other].sort(), 'changes to several files arrive together')
})

t.test('changes during a slow reload are merged into the next batch', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pd-watch-'))
  const ep = join(dir, 'pjsip_endpoint.conf')
  writeFileSync(ep, '0')
  const batches: string[][] = []
  let release: () => void = () => {}
  const w = watchFiles({
    files: [ep],
    debounceMs: 50,
    log: memoryLogger('watch'),
    onChange: async (f) => {
      batches.push(f)
      if (batches.length === 1) await new Promise<void>((r) => (release = r))
    },
  })
  t.teardown(() => w.close())
  await w.ready
  writeFileSync(ep, '1')
  await nextBatch(batches, 1)
  writeFileSync(ep, '2')
  await new Promise((r) => setTimeout(r, 200))
  writeFileSync(ep, '3')
  await new Promise((r) => setTimeout(r, 200))
  t.equal(batches.length, 1, 'no overlapping reload')
  release()
  await nextBatch(batches, 2)
  await w.idle()
  t.equal(batches.length, 2, 'the changes made meanwhile are handled once')
})
