// The exit-code contract (README "Exit codes"): 0 ok, 1 runtime failure, 64 usage, 78 configuration,
// 128+n killed by signal n; Asterisk's own code is passed through where it is the cause.
import { constants } from 'node:os'
export const EXIT = { ok: 0, failure: 1, usage: 64, config: 78 } as const

/** A process's exit as an exit code of ours: its own code, or 128+n when signal n ended it. */
export function exitCodeOf(exit: { code: number | null; signal: string | null }): number {
  if (exit.signal) return 128 + (constants.signals[exit.signal as NodeJS.Signals] ?? 0)
  return exit.code ?? EXIT.failure
}

/** Bad configuration: env values or config files. Carries one line per problem. */
export class ConfigError extends Error {
  readonly problems: string[]
  readonly exitCode = EXIT.config
  constructor(problems: string[], options?: { cause?: unknown }) {
    super(
      problems.length === 1 ? problems[0]! : `${problems.length} configuration problems:\n${problems.join('\n')}`,
      options,
    )
    this.name = 'ConfigError'
    this.problems = problems
  }
}

/** A .conf file that Asterisk would not read as meant; names the file and line. */
export class ConfSyntaxError extends Error {
  readonly file: string
  readonly line: number
  readonly detail: string
  constructor(file: string, line: number, detail: string) {
    super(`${file}:${line}: ${detail}`)
    this.name = 'ConfSyntaxError'
    this.file = file
    this.line = line
    this.detail = detail
  }
}

/** Wrong command-line use. */
export class UsageError extends Error {
  readonly exitCode = EXIT.usage
  constructor(message: string) {
    super(message)
    this.name = 'UsageError'
  }
}

/** "what I was doing: why", keeping the cause. */
export function wrap(doing: string, cause: unknown): Error {
  const why = cause instanceof Error ? cause.message : String(cause)
  return new Error(`${doing}: ${why}`, { cause })
}
