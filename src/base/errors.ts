// The errors of PrivateDial, one shape: each has the exit code it maps to (README "Exit codes":
// 0 ok, 1 runtime failure, 64 usage, 78 configuration, 128+n killed by signal n; Asterisk's own
// code is passed through where it is the cause), and its message names the thing, what was
// expected and what was received.
import { constants } from 'node:os'
export const EXIT = { ok: 0, failure: 1, usage: 64, config: 78 } as const

/** A process's exit as an exit code of ours: its own code, or 128+n when signal n ended it. */
export function exitCodeOf(exit: { code: number | null; signal: string | null }): number {
  if (exit.signal) return 128 + (constants.signals[exit.signal as NodeJS.Signals] ?? 0)
  return exit.code ?? EXIT.failure
}

/** The message of anything thrown, for a log line. */
export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

/**
 * "THING must be EXPECTED, got `RECEIVED` (WHY); FIX": the one way a problem with a value is told,
 * e.g. "SIP_PORT must be a port number 1-65535, got `99999` (out of range)".
 */
export function mustBe(thing: string, expected: string, received: string, more: { why?: string; fix?: string } = {}) {
  return `${thing} must be ${expected}, got \`${received}\`${more.why ? ` (${more.why})` : ''}${more.fix ? `; ${more.fix}` : ''}`
}

/** Base of our errors: the exit code run or a command ends with when this is the cause. */
export class PrivateDialError extends Error {
  readonly exitCode: number
  constructor(message: string, exitCode: number, options?: { cause?: unknown }) {
    super(message, options)
    this.name = new.target.name
    this.exitCode = exitCode
  }
}

/** Bad configuration: env values or config files. Carries one line per problem. */
export class ConfigError extends PrivateDialError {
  readonly problems: string[]
  constructor(problems: string[], options?: { cause?: unknown }) {
    super(
      problems.length === 1 ? problems[0]! : `${problems.length} configuration problems:\n${problems.join('\n')}`,
      EXIT.config,
      options,
    )
    this.problems = problems
  }
}

/** A .conf file that Asterisk would not read as meant; names the file and line. */
export class ConfSyntaxError extends ConfigError {
  readonly file: string
  readonly line: number
  readonly detail: string
  constructor(file: string, line: number, detail: string) {
    super([`${file}:${line}: ${detail}`])
    this.file = file
    this.line = line
    this.detail = detail
  }
}

/** Wrong command-line use. */
export class UsageError extends PrivateDialError {
  constructor(message: string) {
    super(message, EXIT.usage)
  }
}

/** A program we ran that failed (execa's fields): what it was, how it ended, what it said. */
export class ProcessError extends PrivateDialError {
  readonly command: string
  readonly signal: string | undefined
  readonly stderr: string
  constructor(
    command: string,
    detail: string,
    exit: { code?: number | null; signal?: string | null; stderr?: string },
  ) {
    super(`${command}: ${detail}`, exitCodeOf({ code: exit.code ?? null, signal: exit.signal ?? null }))
    this.command = command
    this.signal = exit.signal ?? undefined
    this.stderr = exit.stderr ?? ''
  }
}

/** "what I was doing: why", keeping the cause. */
export function wrap(doing: string, cause: unknown): Error {
  return new Error(`${doing}: ${errorMessage(cause)}`, { cause })
}
