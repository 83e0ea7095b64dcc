// One line per event on stdout: time, level, component, message, then stable key=value fields.
// Secrets never reach here: callers pass masked values (see settings.ts).

export type Level = 'debug' | 'info' | 'warn' | 'error'
export const LEVELS: readonly Level[] = ['debug', 'info', 'warn', 'error']

export type Fields = Record<string, string | number | boolean | undefined>

export interface Logger {
  debug(msg: string, fields?: Fields): void
  info(msg: string, fields?: Fields): void
  warn(msg: string, fields?: Fields): void
  error(msg: string, fields?: Fields): void
  child(component: string): Logger
}

export interface LoggerOptions {
  component: string
  level?: Level
  write?: (line: string) => void
  now?: () => Date
}

function formatValue(v: string | number | boolean): string {
  const s = String(v)
  return /^[^\s"=]+$/.test(s) ? s : JSON.stringify(s)
}

export function formatLine(time: Date, level: Level, component: string, msg: string, fields: Fields = {}): string {
  let line = `${time.toISOString()} ${level.toUpperCase().padEnd(5)} ${component}: ${msg.replace(/[\r\n]+/g, ' ')}`
  for (const [k, v] of Object.entries(fields)) if (v !== undefined) line += ` ${k}=${formatValue(v)}`
  return line
}

export function createLogger(opts: LoggerOptions): Logger {
  const threshold = LEVELS.indexOf(opts.level ?? 'info')
  const write = opts.write ?? ((line: string) => process.stdout.write(line + '\n'))
  const now = opts.now ?? (() => new Date())
  const at = (level: Level) => (msg: string, fields?: Fields) => {
    if (LEVELS.indexOf(level) >= threshold) write(formatLine(now(), level, opts.component, msg, fields))
  }
  return {
    debug: at('debug'),
    info: at('info'),
    warn: at('warn'),
    error: at('error'),
    child: (component: string) => createLogger({ ...opts, component }),
  }
}

/** A logger that keeps its lines, for tests and for --dry-run style capture. */
export function memoryLogger(component = 'test', level: Level = 'debug'): Logger & { lines: string[] } {
  const lines: string[] = []
  return Object.assign(createLogger({ component, level, write: (l) => lines.push(l) }), { lines })
}
