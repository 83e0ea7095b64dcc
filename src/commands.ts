// The `privatedial` commands: argv in, exit code out. Commands load their modules on demand so
// `--help` and `health` start fast.
import { readFileSync } from 'node:fs'
import { ConfigError, EXIT, UsageError } from './base/errors.ts'
import { createLogger, type Level, type Logger } from './base/log.ts'
import { readSettings, SETTINGS, type Settings } from './config/settings.ts'

interface Command {
  summary: string
  usage: string
  options?: Record<string, { type: 'boolean' | 'string'; short?: string; doc: string }>
  run: (ctx: Context, values: Record<string, string | boolean | undefined>) => Promise<number>
}

export interface Context {
  env: NodeJS.ProcessEnv
  settings: Settings
  confDir: string
  log: Logger
  out: (text: string) => void
}

const COMMANDS: Record<string, Command> = {
  run: {
    summary: "the container's main process: seed, apply, check, start and supervise Asterisk, reload on change",
    usage: 'privatedial run',
    async run(ctx) {
      const { run } = await import('./run.ts')
      return run({ settings: ctx.settings, confDir: ctx.confDir, log: ctx.log })
    },
  },
  apply: {
    summary: 'write the environment variables into the config files',
    usage: 'privatedial apply [--dry-run]',
    options: {
      'dry-run': { type: 'boolean', short: 'n', doc: 'print a unified diff of what would change; write nothing' },
    },
    async run(ctx, values) {
      const { seed } = await import('./config/seed.ts')
      const { applyToDir, resolvesInDns } = await import('./config/apply.ts')
      const dryRun = values['dry-run'] === true
      if (!dryRun) await seed({ confDir: ctx.confDir, log: ctx.log.child('seed') })
      await applyToDir({
        confDir: ctx.confDir,
        settings: ctx.settings,
        dryRun,
        log: ctx.log.child('apply'),
        print: ctx.out,
        resolves: resolvesInDns,
      })
      return EXIT.ok
    },
  },
  check: {
    summary: 'validate the environment and the config dir; exit 78 on any problem',
    usage: 'privatedial check',
    async run(ctx) {
      const { checkConfDir } = await import('./check.ts')
      const { problems, files, endpoints } = await checkConfDir(ctx.confDir)
      if (problems.length) throw new ConfigError(problems)
      ctx.log.child('check').info(`config dir ${ctx.confDir} is valid`, { files, endpoints })
      return EXIT.ok
    },
  },
  cert: {
    summary: 'obtain or renew the TLS certificate now (self-signed, ACME or Traefik), then exit',
    usage: 'privatedial cert',
    async run(ctx) {
      const { certOptions } = await import('./cert/config.ts')
      const { ensureCertificate } = await import('./cert/keeper.ts')
      const log = ctx.log.child('cert')
      const r = await ensureCertificate(certOptions(ctx.settings, log))
      if (r.error) {
        log.error(`certificate not obtained: ${r.error.message}; the one in place is kept`)
        return EXIT.failure
      }
      return EXIT.ok
    },
  },
  health: {
    summary: "exit 0 when Asterisk answers and all its PJSIP transports are up (the image's HEALTHCHECK)",
    usage: 'privatedial health',
    async run(ctx) {
      const { health } = await import('./asterisk/health.ts')
      const r = await health({ bin: ctx.settings.get('ASTERISK_BIN')?.value ?? 'asterisk', confDir: ctx.confDir })
      ctx.out(`${r.ok ? 'healthy' : 'unhealthy'}: ${r.detail}\n`)
      return r.ok ? EXIT.ok : EXIT.failure
    },
  },
}

function helpText(): string {
  const width = Math.max(...Object.keys(COMMANDS).map((c) => c.length))
  return [
    'Usage: privatedial <command> [options]',
    '',
    'PrivateDial: a residential PBX. Applies the environment to the Asterisk configuration and runs Asterisk.',
    '',
    'Commands:',
    ...Object.entries(COMMANDS).map(([n, c]) => `  ${n.padEnd(width)}  ${c.summary}`),
    '',
    'Run `privatedial <command> --help` for its options.',
    '',
    'Environment (see README.md for what each writes):',
    ...SETTINGS.map((s) => `  ${(s.name + (s.secret ? ' (or _FILE)' : '')).padEnd(28)} ${s.doc} [${s.default}]`),
    '',
    'Exit codes: 0 ok, 1 failure, 64 usage error, 78 configuration error, 128+n killed by signal n.',
  ].join('\n')
}

function commandHelp(name: string, c: Command): string {
  const opts = Object.entries(c.options ?? {}).map(
    ([o, d]) => `  ${d.short ? `-${d.short}, ` : '    '}--${o.padEnd(12)} ${d.doc}`,
  )
  return [
    `Usage: ${c.usage}`,
    '',
    `${name}: ${c.summary}`,
    '',
    'Options:',
    ...opts,
    '  -h, --help         show this help',
  ].join('\n')
}

export async function main(
  argv: string[],
  env: NodeJS.ProcessEnv,
  out = (s: string) => process.stdout.write(s),
): Promise<number> {
  const level = (['debug', 'info', 'warn', 'error'].includes(env.LOG_LEVEL ?? '') ? env.LOG_LEVEL : 'info') as Level
  const log = createLogger({ component: 'privatedial', level })
  const [name, ...rest] = argv
  try {
    if (!name || name === '--help' || name === '-h' || name === 'help') {
      out(helpText() + '\n')
      return name ? EXIT.ok : EXIT.usage
    }
    if (name === '--version') {
      out(JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version + '\n')
      return EXIT.ok
    }
    const command = COMMANDS[name]
    if (!command)
      throw new UsageError(`unknown command \`${name}\`; expected one of ${Object.keys(COMMANDS).join(', ')}`)
    const options = { help: { type: 'boolean' as const, short: 'h' }, ...command.options }
    let values: Record<string, string | boolean | undefined> = {}
    // node:util costs a start ~6 ms; `run` and `health` have no arguments to parse.
    if (rest.length) {
      const { parseArgs } = await import('node:util')
      try {
        values = parseArgs({ args: rest, options, allowPositionals: false }).values
      } catch (err) {
        throw new UsageError(`${name}: ${(err as Error).message}`)
      }
    }
    if (values.help) {
      out(commandHelp(name, command) + '\n')
      return EXIT.ok
    }
    const { settings, problems } = readSettings(env, { readFile: (p) => readFileSync(p, 'utf8') })
    if (problems.length) throw new ConfigError(problems)
    const confDir = settings.get('ASTERISK_CONF_DIR')?.value ?? '/etc/asterisk'
    return await command.run({ env, settings, confDir, log, out }, values)
  } catch (err) {
    if (err instanceof ConfigError) {
      for (const p of err.problems) log.error(p)
      log.error(`configuration error: nothing was changed (exit ${EXIT.config})`)
      return EXIT.config
    }
    if (err instanceof UsageError) {
      log.error(err.message)
      return EXIT.usage
    }
    log.error((err as Error).message ?? String(err))
    if (level === 'debug' && err instanceof Error && err.stack) log.debug(err.stack)
    return EXIT.failure
  }
}
