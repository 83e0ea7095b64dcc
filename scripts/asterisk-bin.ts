// ASTERISK_BIN for the tests and benchmarks: as set, or the root `npm run test:setup` made.
import { execFileSync } from 'node:child_process'

export function defaultAsteriskBin(log: (line: string) => void = console.log): void {
  if (!process.env.ASTERISK_BIN) {
    try {
      const script = new URL('./asterisk-root.sh', import.meta.url).pathname
      process.env.ASTERISK_BIN = execFileSync(script, ['--find'], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'inherit'],
      })
        .trim()
        .split('\n')
        .at(-1)
    } catch {
      log(
        'asterisk: none found; the real-Asterisk tests and benchmarks will say skipped (npm run test:setup makes one)',
      )
    }
  }
  if (process.env.ASTERISK_BIN) log(`asterisk: ASTERISK_BIN=${process.env.ASTERISK_BIN}`)
}
