// `npm test`: type check, then tap, ending with one plain summary line that any CI can read:
// "tests: N passed, N failed, N skipped" (leaf assertions; a skipped subtest or file counts once,
// and its reason is listed, so a skip is never mistaken for a pass).
import { spawn } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Parser, type Result } from 'tap-parser'
import { defaultAsteriskBin } from './asterisk-bin.ts'

const bin = (name: string) => new URL(`../node_modules/.bin/${name}`, import.meta.url).pathname

function run(cmd: string, args: string[], onOut?: (chunk: Buffer) => void): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { stdio: ['inherit', onOut ? 'pipe' : 'inherit', 'inherit'] })
    child.stdout?.on('data', (c: Buffer) => {
      process.stdout.write(c)
      onOut?.(c)
    })
    child.on('close', (code, signal) => resolve(code ?? (signal ? 128 : 1)))
  })
}

const tsc = await run(bin('tsc'), ['--noEmit'])
if (tsc !== 0) {
  console.log('typecheck: failed (tsc --noEmit)')
  process.exit(tsc)
}
console.log('typecheck: ok (tsc --noEmit)')

// Type-aware lint (floating promises, unused code, type-only imports) and the formatter, before
// any test runs: a style slip fails in seconds, not after the real-Asterisk suites.
for (const [name, args] of [
  ['oxlint', ['--type-aware', '--deny-warnings']],
  ['prettier', ['--check', '--log-level=warn', '.']],
] as const) {
  const code = await run(bin(name), [...args])
  if (code !== 0) {
    console.log(`${name}: failed (npm run lint / npm run format fixes what it can)`)
    process.exit(code)
  }
  console.log(`${name}: ok`)
}

defaultAsteriskBin()

// tap compiles its plugin set at install time, with its TypeScript loader in it; Node 24 runs our
// .ts itself and that loader breaks on TypeScript 7, so package.json drops it. A fresh install
// still has the default set built: rebuild it once.
const built = new URL('../node_modules/@tapjs/test/test-built/dist/esm/index.js', import.meta.url)
if (readFileSync(built, 'utf8').includes('@tapjs/typescript')) {
  console.log('tap: building its plugins without @tapjs/typescript (tap build)')
  const code = await run(bin('tap'), ['build'])
  if (code !== 0) process.exit(code)
}

const counts = { passed: 0, failed: 0, skipped: 0 }
const skips: string[] = []
function watch(p: Parser, path: string[]): void {
  const children = new Set<string>()
  p.on('child', (c: Parser) => {
    children.add(c.name)
    watch(c, [...path, c.name])
  })
  p.on('assert', (r: Result) => {
    const where = [...path, r.name].filter(Boolean).join(' > ')
    if (r.skip || r.todo) {
      counts.skipped++
      skips.push(
        `${where}: ${typeof r.skip === 'string' ? r.skip : typeof r.todo === 'string' ? `todo ${r.todo}` : 'skipped'}`,
      )
    } else if (children.has(r.name)) return
    else if (r.ok) counts.passed++
    else counts.failed++
  })
}
/** tap over `args`, its output counted; resolves with tap's exit code. */
async function tap(args: string[]): Promise<number> {
  const parser = new Parser()
  watch(parser, [])
  const code = await run(bin('tap'), ['--reporter=tap', ...args], (c) => parser.write(c))
  parser.end()
  return code
}

/**
 * The test files, split in two: those that start real peers (Asterisk, sipp, Docker) run one at a
 * time, since two of them at once on a 2-core CI machine starve each other's SIP timers and race
 * for ports between one's check and its bind; the rest run in parallel.
 */
function testFiles(): { parallel: string[]; serial: string[] } {
  const root = new URL('..', import.meta.url).pathname
  const all = readdirSync(join(root, 'test'), { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts') && !/^(helpers|fixtures)\//.test(f))
    .map((f) => join('test', f))
    .sort()
  const real = (f: string) =>
    /helpers\/(asterisk|sipp|image|docker|netns)\.ts'/.test(readFileSync(join(root, f), 'utf8'))
  return { parallel: all.filter((f) => !real(f)), serial: all.filter(real) }
}

// Tests make temp dirs (config copies, Asterisk scratch dirs, spools); they all go under one that
// is removed afterwards, so a run leaves nothing in /tmp even where a test forgets to clean up.
const scratch = mkdtempSync(join(tmpdir(), 'privatedial-test-'))
process.env.TMPDIR = scratch
let code: number
if (process.argv.length > 2) code = await tap(process.argv.slice(2))
else {
  const { parallel, serial } = testFiles()
  console.log(`tap: ${parallel.length} files in parallel, then ${serial.length} with real peers one at a time`)
  code = (await tap(parallel)) || 0
  code = (await tap(['--jobs=1', ...serial])) || code
}
rmSync(scratch, { recursive: true, force: true })
for (const s of skips) console.log(`skipped: ${s}`)
console.log(`tests: ${counts.passed} passed, ${counts.failed} failed, ${counts.skipped} skipped`)
process.exit(code !== 0 ? code : counts.failed ? 1 : 0)
