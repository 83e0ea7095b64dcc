// What the image runs: src/ compiled to dist/, started as the image starts it, by the file itself
// (so the Node flags on its #! line apply), with this project's Node first on PATH.
import { execFileSync } from 'node:child_process'
import { chmodSync } from 'node:fs'
import { dirname } from 'node:path'

/** Builds dist/ afresh and says how to start the image's `privatedial`. */
export function distCli(): { file: string; PATH: string } {
  execFileSync('npm', ['run', '--silent', 'build'], { stdio: 'inherit' })
  const file = new URL('../dist/cli.js', import.meta.url).pathname
  chmodSync(file, 0o755)
  return { file, PATH: `${dirname(process.execPath)}:${process.env.PATH ?? ''}` }
}
