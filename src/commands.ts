// The `privatedial` commands: argv in, exit code out. Commands load their modules on demand so
// `--help` and `health` start fast.
import { readFileSync } from 'node:fs'
import { ConfigError, errorMessage, EXIT, UsageError } from './base/errors.ts'
import { createLogger, type Level, type Logger } from './base/log.ts'
import { readSettings, settingByName, SETTINGS, valueOf, type Settings } from './config/settings.ts'

interface Command {
  summary: string
  usage: string
  options?: Record<string, { type: 'boolean' | 'string'; short?: string; doc: string }>
  /** Words after the command it takes (`bans delete ADDRESS`). */
  positionals?: boolean
  run: (ctx: Context, values: Record<string, string | boolean | undefined>, positionals: string[]) => Promise<number>
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
      // `ps` in the container then shows what this process is, not `MainThread` or `node`.
      process.title = 'privatedial run'
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
      if (!dryRun) {
        const { writeTextTrunks } = await import('./config/text-trunks.ts')
        await writeTextTrunks(ctx.confDir, ctx.log.child('apply'))
      }
      return EXIT.ok
    },
  },
  check: {
    summary: 'validate the environment and the config dir; exit 78 on any problem',
    usage: 'privatedial check',
    async run(ctx) {
      const { checkConfDir } = await import('./check.ts')
      const { mailStatus } = await import('./mail/status.ts')
      const { problems, warnings, files, endpoints } = await checkConfDir(ctx.confDir)
      // Mail that waits is no configuration error, but a mailcmd minivm-send refuses is.
      const mail = await mailStatus(ctx.confDir, ctx.env)
      for (const warning of mail.warnings) ctx.log.child('check').warn(warning)
      problems.push(...mail.problems)
      if (problems.length) throw new ConfigError(problems)
      const log = ctx.log.child('check')
      for (const w of warnings) log.warn(w)
      log.info(`config dir ${ctx.confDir} is valid`, { files, endpoints })
      return EXIT.ok
    },
  },
  cert: {
    summary: 'obtain or renew the TLS certificate now (self-signed, ACME or Traefik), then exit',
    usage: 'privatedial cert',
    async run(ctx) {
      const { certOptions, tlsFilesOf } = await import('./cert/config.ts')
      const { ensureCertificate } = await import('./cert/keeper.ts')
      const { readConfTree } = await import('./config/files.ts')
      const log = ctx.log.child('cert')
      const files = tlsFilesOf((await readConfTree(ctx.confDir, 'pjsip_transport.conf')).docs)
      const r = await ensureCertificate(certOptions(ctx.settings, log, files))
      if (r.error) {
        log.error(`certificate not obtained: ${r.error.message}; the one in place is kept`)
        return EXIT.failure
      }
      return EXIT.ok
    },
  },
  bans: {
    summary: 'list the addresses banned for failed logins; `bans delete ADDRESS` lifts one at once',
    usage: 'privatedial bans [delete ADDRESS]',
    positionals: true,
    async run(ctx, _values, args) {
      const { liftBan, listBans } = await import('./ban/cli.ts')
      const file = valueOf(ctx.settings, 'BAN_FILE')!
      if (!args.length) {
        ctx.out(await listBans(file))
        return EXIT.ok
      }
      const [verb, address, ...more] = args
      if (verb !== 'delete' || address === undefined || more.length)
        throw new UsageError(`bans: expected \`bans\` or \`bans delete ADDRESS\`, got \`bans ${args.join(' ')}\``)
      const r = await liftBan(file, address)
      if (r.lifted) {
        ctx.out(`lifted the ban on ${r.address}\n`)
        return EXIT.ok
      }
      ctx.log.error(
        `the ban service did not take the request to lift ${r.address} (is \`privatedial run\` running?); it is lifted when run next starts`,
      )
      return EXIT.failure
    },
  },
  health: {
    summary: "exit 0 when Asterisk answers and all its PJSIP transports are up (the image's HEALTHCHECK)",
    usage: 'privatedial health',
    async run(ctx) {
      const { health } = await import('./asterisk/health.ts')
      const r = await health({ bin: valueOf(ctx.settings, 'ASTERISK_BIN')!, confDir: ctx.confDir })
      ctx.out(`${r.ok ? 'healthy' : 'unhealthy'}: ${r.detail}\n`)
      return r.ok ? EXIT.ok : EXIT.failure
    },
  },
  texts: {
    summary: 'list the texts kept for phones that are offline: per user, how many, the oldest, their size',
    usage: 'privatedial texts [--bodies]',
    options: {
      bodies: { type: 'boolean', doc: 'also list each text: when it was sent, by whom, to how many phones, its body' },
    },
    async run(ctx, values) {
      const { readStoreDir } = await import('./texts/store.ts')
      const { formatReport } = await import('./texts/report.ts')
      const dir = valueOf(ctx.settings, 'TEXT_STORE_DIR')!
      ctx.out(formatReport(dir, await readStoreDir(dir), { bodies: values.bodies === true }))
      return EXIT.ok
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
  // The logger is needed before the settings are read (a usage error is logged too); a bad
  // LOG_LEVEL is reported with the other settings' problems below.
  const logLevel = settingByName('LOG_LEVEL')
  const parsed = env.LOG_LEVEL ? logLevel.parse(env.LOG_LEVEL) : undefined
  const level = (parsed && 'ok' in parsed ? parsed.ok : logLevel.value) as Level
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
    let positionals: string[] = []
    // node:util costs a start ~6 ms; `run` and `health` have no arguments to parse.
    if (rest.length) {
      const { parseArgs } = await import('node:util')
      try {
        ;({ values, positionals } = parseArgs({ args: rest, options, allowPositionals: !!command.positionals }))
      } catch (err) {
        throw new UsageError(`${name}: ${errorMessage(err)}`)
      }
    }
    if (values.help) {
      out(commandHelp(name, command) + '\n')
      return EXIT.ok
    }
    const { settings, problems } = readSettings(env, { readFile: (p) => readFileSync(p, 'utf8') })
    if (problems.length) throw new ConfigError(problems)
    const confDir = valueOf(settings, 'ASTERISK_CONF_DIR')!
    return await command.run({ env, settings, confDir, log, out }, values, positionals)
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
    log.error(errorMessage(err))
    if (level === 'debug' && err instanceof Error && err.stack) log.debug(err.stack)
    return EXIT.failure
  }
}
