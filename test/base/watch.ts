import t from 'tap'
import { mkdtempSync, renameSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { memoryLogger } from '../../src/base/log.ts'
import { watchFiles } from '../../src/base/watch.ts'
import { waitFor } from '../helpers/wait-for.ts'

/** Waits for the watcher to report, with a generous bound so a broken watcher fails instead of hanging. */
const nextBatch = (batches: string[][], count: number) =>
  waitFor(`batch ${count} to be reported`, () => batches.length >= count)

/** Waits for the watcher to have seen `n` events for `file` in all (its debug log says each). */
const eventsSeen = (log: { lines: string[] }, file: string, n: number) =>
  waitFor(`${n} events for ${file}`, () => log.lines.filter((l) => l.includes(`file event: ${file}`)).length >= n)

t.test('saves are reported as settled batches of files whose content changed', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pd-watch-'))
  const ep = join(dir, 'pjsip_endpoint.conf')
  const other = join(dir, 'extensions_local.conf')
  writeFileSync(ep, '[a]\n')
  writeFileSync(other, '[globals]\n')
  writeFileSync(join(dir, 'unwatched.conf'), '')
  const batches: string[][] = []
  const log = memoryLogger('watch')
  const w = watchFiles({
    files: [ep, other],
    debounceMs: 100,
    log,
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
  // The unwatched file makes no event at all; the rewrite of ep is seen, compared and dropped.
  await waitFor('the rewrite to be compared', () => log.lines.some((l) => l.includes('unchanged content')))
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
  const log = memoryLogger('watch')
  const w = watchFiles({
    files: [ep],
    debounceMs: 50,
    log,
    onChange: async (f) => {
      batches.push(f)
      if (batches.length === 1) await new Promise<void>((r) => (release = r))
    },
  })
  t.teardown(() => w.close())
  await w.ready
  writeFileSync(ep, '1')
  await nextBatch(batches, 1)
  const seen = log.lines.filter((l) => l.includes(`file event: ${ep}`)).length
  writeFileSync(ep, '2')
  await eventsSeen(log, ep, seen + 1)
  t.equal(batches.length, 1, 'no overlapping reload while the first is handled')
  writeFileSync(ep, '3')
  release()
  await nextBatch(batches, 2)
  await w.idle()
  t.equal(batches.length, 2, 'the changes made meanwhile are handled once')
})
