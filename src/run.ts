// `privatedial run`: the container's main process under tini. Start-up is a few named phases
// (preflight, seed, apply, check, dirs, certificate); then run is a list of services, started in
// order with their timings logged and stopped in reverse within STOP_GRACE_SECONDS.
import { execFileSync } from 'node:child_process'
import { chown, mkdir } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { certOptions, tlsFilesOf } from './cert/config.ts'
import { ensureCertificate, keepCertificateFresh, type CertOptions, type CertResult } from './cert/keeper.ts'
import { applyToDir, resolvesInDns } from './config/apply.ts'
import { readConfTree } from './config/files.ts'
import { prepareAsteriskDirs, unreadableByAsterisk, type Account } from './asterisk/dirs.ts'
import { notExecutable, type AsteriskTarget } from './asterisk/process.ts'
import { reloader, requestFor, rxReload, type Reloader } from './asterisk/reload.ts'
import { asteriskService, type AsteriskService } from './asterisk/service.ts'
import { logFilesService } from './asterisk/log-files.ts'
import { banService } from './ban/service.ts'
import { checkConfDir } from './check.ts'
import { describeUnavailable, unavailableIpv6 } from './asterisk/ipv6.ts'
import { TEXT_TRUNKS_FILE, writeTextTrunks } from './config/text-trunks.ts'
import { ConfigError, errorMessage, EXIT } from './base/errors.ts'
import type { Logger } from './base/log.ts'
import { seed } from './config/seed.ts'
import { valueOf, type Settings } from './config/settings.ts'
import type { Service, ServiceContext } from './service.ts'
import type { Websms } from './websms/service.ts'

export interface RunOptions {
  settings: Settings
  confDir: string
  log: Logger
  /** Signals are delivered through this, so tests can drive a run in-process. */
  signals?: NodeJS.EventEmitter
  uid?: number
}

/** Who Asterisk runs as: dropping root is the default; `root` keeps it (tests, special set-ups). */
export function asteriskUser(settings: Settings, uid: number): Account | undefined {
  if (uid !== 0) return undefined
  const name = valueOf(settings, 'ASTERISK_USER')!
  if (name === 'root') return undefined
  let out: string
  try {
    // One `id` (POSIX format: uid=N(name) gid=N(name) groups=N(name),...): each run costs ~7 ms of start.
    out = execFileSync('id', [name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] })
  } catch {
    throw new ConfigError([
      `ASTERISK_USER names \`${name}\`, which is not a user on this system; create it, or set ASTERISK_USER=root to run Asterisk as root`,
    ])
  }
  const num = (key: string) => Number(new RegExp(`\\b${key}=(\\d+)`).exec(out)?.[1])
  const groups = (/\bgroups=(\S+)/.exec(out)?.[1] ?? '')
    .split(',')
    .map((g) => parseInt(g, 10))
    .filter((g) => !Number.isNaN(g))
  const account = { name, uid: num('uid'), gid: num('gid'), groups }
  if (Number.isNaN(account.uid) || Number.isNaN(account.gid))
    throw new Error(`\`id ${name}\` printed \`${out.trim()}\`, expected uid=N(name) gid=N(name) groups=...`)
  return account
}

/** How long a service stopped before Asterisk may take: they abandon work, Asterisk drains calls. */
const QUICK_STOP_MS = 1000

export async function run(opts: RunOptions): Promise<number> {
  const t0 = Date.now()
  const { settings, confDir, log } = opts
  const signals = opts.signals ?? process
  const phase = (name: string) => log.child(name)
  const target: AsteriskTarget = { bin: valueOf(settings, 'ASTERISK_BIN')!, confDir }
  const graceMs = Number(valueOf(settings, 'STOP_GRACE_SECONDS')) * 1000

  // Preflight: what would make every later phase pointless.
  const unrunnable = notExecutable(target.bin)
  if (unrunnable)
    throw new ConfigError([
      `ASTERISK_BIN: ${unrunnable}; set it to the Asterisk executable (the image's is /usr/sbin/asterisk)`,
    ])
  const user = asteriskUser(settings, opts.uid ?? process.getuid?.() ?? 0)
  // What Asterisk would trip over: the files' content and, once it has dropped root, their modes.
  const configProblems = async () => {
    const checked = await checkConfDir(confDir)
    return { ...checked, problems: [...checked.problems, ...(user ? await unreadableByAsterisk(confDir, user) : [])] }
  }

  // Seed before apply (apply edits the seeded files) and check after apply (check what Asterisk
  // will read). A config error stops here, before anything runs.
  await seed({ confDir, log: phase('seed') })
  await applyToDir({ confDir, settings, log: phase('apply'), resolves: resolvesInDns })
  await writeTextTrunks(confDir, phase('apply'))
  const { problems, warnings, files, endpoints } = await configProblems()
  if (problems.length) throw new ConfigError(problems)
  for (const w of warnings) phase('check').warn(w)
  phase('check').info(`config dir ${confDir} is valid`, { files, endpoints })
  // A first start: the PBX runs, but nobody can register or call in yet.
  if (!endpoints)
    phase('check').warn(
      'pjsip_endpoint.conf defines no trunk and no user yet; add them (its comments show how) and save it: the PBX reloads it',
    )
  // Asterisk runs on without the transports it can't bind, with an ERROR for each: on a host
  // without IPv6 that is expected, and worth one line that says why and what still works.
  const noIpv6 = await unavailableIpv6((await readConfTree(confDir, 'pjsip.conf')).docs)
  if (noIpv6) phase('check').warn(describeUnavailable(noIpv6))
  await prepareAsteriskDirs(confDir, user, phase('dirs'))

  // The certificate files are the ones the TLS transport names, after apply wrote TLS_*_FILE there.
  const certLog = phase('cert')
  const certOpts = certOptions(
    settings,
    certLog,
    tlsFilesOf((await readConfTree(confDir, 'pjsip_transport.conf')).docs),
  )
  for (const dir of new Set([dirname(certOpts.certFile), dirname(certOpts.keyFile)]))
    if (await mkdir(dir, { recursive: true, mode: 0o755 })) certLog.info(`created certificate directory ${dir}`)
  // Asterisk reads the key as its own user; the key stays 0600, so it must be that user's.
  const ownCert = async () => {
    if (user) for (const f of [certOpts.certFile, certOpts.keyFile]) await chown(f, user.uid, user.gid)
  }
  // A certificate must exist before Asterisk starts its TLS transport; one from a CA that is slow
  // or down would hold up the PBX, so start serves what is there (or a self-signed stand-in) and
  // the keeper fetches the real one in the background.
  const first = await ensureCertificate(certOpts, { contactCa: false })
  await ownCert()

  // The ban service logs one line per ban; the lines Asterisk prints per attempt (security
  // events, refusals of a banned address) stay off run's log (the events stay in the security file).
  const bans = banService()
  const asterisk = asteriskService({
    target,
    user: user?.name,
    graceMs,
    log: phase('supervise'),
    quiet: (line) => bans.quiet(line),
  })
  const reloadLog = phase('reload')
  const reloads = reloader({
    check: async () => {
      // The trunks' text twins follow the trunks, written before the check and the reload read
      // them; a file that can't be read is the check's to report.
      await writeTextTrunks(confDir, reloadLog).catch((err: Error) =>
        reloadLog.debug(`${TEXT_TRUNKS_FILE} not rewritten: ${err.message}`),
      )
      return (await configProblems()).problems
    },
    rx: asterisk.view.rx,
    log: reloadLog,
    state: asterisk.state,
  })
  asterisk.view.onReady(() => {
    reloads.ready()
    const m = process.memoryUsage()
    log.info(`PrivateDial ready ${Date.now() - t0} ms after start`, {
      rss_mb: Math.round(m.rss / 2 ** 20),
      heap_mb: Math.round(m.heapUsed / 2 ** 20),
    })
  })
  const websms = websmsService(settings, confDir)
  // Order matters: WebSMS takes webhooks while Asterisk (re)starts (they wait in its queue); the
  // texts service writes manager.conf before Asterisk reads it and takes the dial plan's texts from
  // the first one on, and is stopped after Asterisk, whose drain may still hand it texts; Asterisk
  // spawns before anything it does not need is even loaded; the rest follow it.
  const services: Service[] = [
    ...(websms ? [websms] : []),
    // Asterisk, once it dropped root, must read the manager.conf the texts service writes; and
    // stopped after Asterisk, the service still keeps the texts that arrive during its drain.
    lazy('texts', async () => (await import('./texts/service.ts')).textsService({ asteriskOwner: user })),
    asterisk,
    // Right behind Asterisk: a scanner probes from the first second.
    bans,
    logFilesService(),
    configWatcher(settings, confDir, reloads, websms),
    certificateKeeper(certOpts, first, ownCert, asterisk),
    lazy('voicemail-mail', async () => (await import('./mail/flusher.ts')).voicemailMailService()),
    lazy('registrations', async () => (await import('./asterisk/registrations.ts')).registrationsService()),
  ]
  if (!websms) phase('websms').info('WebSMS is off (WEBSMS_PORT is not set)')

  const started: Service[] = []
  const stopRequested = new AbortController()
  let stopping: Promise<void> | undefined
  let starting: Promise<void> | undefined
  const stop = (why: string): Promise<void> => {
    stopping ??= (async () => {
      log.info(`${why}; shutting down`)
      stopRequested.abort()
      // A service being started finishes starting first, so that it is stopped too.
      await starting?.catch(() => undefined)
      const deadline = Date.now() + graceMs + QUICK_STOP_MS
      for (const s of [...started].reverse()) {
        const quick = s !== asterisk
        const by = quick ? Math.min(deadline, Date.now() + QUICK_STOP_MS) : deadline
        const t = Date.now()
        const result = await settleBy(
          s.stop(by, why.replace(/^received /, '')),
          by + (quick ? 0 : QUICK_STOP_MS + 1500),
        )
        if (result === 'late') phase(s.name).warn(`did not stop within ${by - t} ms; abandoned`)
        else if (result instanceof Error) phase(s.name).error(`stopping failed: ${result.message}`)
        else phase(s.name).debug(`stopped in ${Date.now() - t} ms`)
      }
    })()
    return stopping
  }
  const onSignal = (signal: string) => () => void stop(`received ${signal}`)
  const onTerm = onSignal('SIGTERM')
  const onInt = onSignal('SIGINT')
  const onHup = () => {
    log.info('received SIGHUP; applying the environment again and reloading Asterisk')
    void applyToDir({ confDir, settings, log: phase('apply'), resolves: resolvesInDns }).then(
      () => reloads.request({ reason: 'SIGHUP', commands: ['core reload'] }),
      (err: Error) => reloadLog.error(`SIGHUP: applying the environment failed, nothing reloaded: ${err.message}`),
    )
  }
  // A bug in a service must not take the calls down with it: it is logged, and the PBX runs on.
  const onRejection = (err: unknown) =>
    log.error(`internal error (please report it), the PBX runs on: ${err instanceof Error ? err.stack : String(err)}`)
  signals.on('SIGTERM', onTerm)
  signals.on('SIGINT', onInt)
  signals.on('SIGHUP', onHup)
  process.on('unhandledRejection', onRejection)

  for (const s of services) {
    if (stopping) break
    const t = Date.now()
    const ctx: ServiceContext = {
      settings,
      confDir,
      log: phase(s.name),
      asterisk: asterisk.view,
      signal: stopRequested.signal,
    }
    starting = s.start(ctx)
    try {
      await starting
      started.push(s)
      ctx.log.debug(`started in ${Date.now() - t} ms`)
    } catch (err) {
      ctx.log.error(`could not start; the PBX runs on without it: ${errorMessage(err)}`)
    }
  }
  starting = undefined

  let code = await asterisk.done
  // Asterisk gave up (a crash loop): the other services have nothing left to serve.
  if (!stopping) code ||= EXIT.failure
  await stop(stopping ? 'stopped' : 'Asterisk is gone')
  signals.off('SIGTERM', onTerm)
  signals.off('SIGINT', onInt)
  signals.off('SIGHUP', onHup)
  process.off('unhandledRejection', onRejection)
  log.info(`exiting with code ${code}`)
  return code
}

/** Resolves with undefined when `p` settles by `at` (epoch ms), its error if it failed, or 'late'. */
function settleBy(p: Promise<void>, at: number): Promise<undefined | Error | 'late'> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<'late'>((r) => (timer = setTimeout(() => r('late'), Math.max(0, at - Date.now()))))
  return Promise.race([
    p.then(
      () => undefined,
      (err: Error) => err,
    ),
    late,
  ]).finally(() => clearTimeout(timer))
}

/** WebSMS, when WEBSMS_PORT turns it on; it also reloads websms.conf for the config watcher. */
function websmsService(settings: Settings, confDir: string): (Service & { reload(): Promise<void> }) | undefined {
  const port = valueOf(settings, 'WEBSMS_PORT')
  if (!port) return undefined
  let websms: Websms | undefined
  return {
    name: 'websms',
    async start(ctx) {
      const { startWebsms } = await import('./websms/service.ts')
      websms = await startWebsms({
        confDir,
        port: Number(port),
        spoolDir: valueOf(settings, 'WEBSMS_SPOOL_DIR')!,
        log: ctx.log,
      })
      // Texts that waited while Asterisk was down go out once it is up.
      ctx.asterisk.onReady(() => websms?.flush())
    },
    async stop() {
      await websms?.close()
    },
    async reload() {
      await websms?.reload()
    },
  }
}

/** pjsip_endpoint.conf (and WATCH_FILES, websms.conf) watched: a saved change is checked, then reloaded. */
function configWatcher(
  settings: Settings,
  confDir: string,
  reloads: Reloader,
  websms: { reload(): Promise<void> } | undefined,
): Service {
  let close: (() => Promise<void>) | undefined
  const websmsConf = join(confDir, 'websms.conf')
  return {
    name: 'watch',
    async start(ctx) {
      const { watchFiles } = await import('./base/watch.ts')
      if (ctx.signal.aborted) return
      const watcher = watchFiles({
        files: [
          join(confDir, 'pjsip_endpoint.conf'),
          ...(websms ? [websmsConf] : []),
          ...(valueOf(settings, 'WATCH_FILES')?.split(',') ?? []),
        ],
        log: ctx.log,
        onChange: async (files) => {
          // websms.conf is ours, not Asterisk's: the service reloads it, or keeps the old one if it is broken.
          if (websms && files.includes(websmsConf)) {
            await websms.reload().then(
              () => ctx.log.info('WebSMS reloaded websms.conf'),
              (err: Error) =>
                ctx.log.error(`websms.conf not reloaded, the service keeps its current configuration: ${err.message}`),
            )
          }
          const changed = files.filter((f) => f !== websmsConf)
          if (changed.length) await reloads.request(requestFor(changed))
        },
      })
      close = () => watcher.close()
    },
    async stop() {
      await close?.()
    },
  }
}

/** Renews the certificate when due and has Asterisk serve the new one. */
function certificateKeeper(
  opts: CertOptions,
  first: CertResult,
  ownCert: () => Promise<void>,
  asterisk: AsteriskService,
): Service {
  let keeper: { stop(): Promise<void> } | undefined
  return {
    name: 'cert',
    start(ctx) {
      keeper = keepCertificateFresh(
        opts,
        async () => {
          await ownCert()
          // A TLS listener restarts in place when its files changed: new handshakes get the new
          // certificate, calls and registrations stay up.
          if (asterisk.state() !== 'down') await rxReload(ctx.asterisk.rx, 'module reload res_pjsip.so')
          ctx.log.info('Asterisk reloaded res_pjsip for the new certificate')
        },
        { after: first },
      )
      return Promise.resolve()
    },
    stop() {
      // An order in flight is abandoned, not awaited (a CA that never answers would hold the
      // drain); the next start checks again, and nothing is written half.
      void keeper?.stop()
      return Promise.resolve()
    },
  }
}

/** A service whose code loads when it starts, so that what Asterisk does not need loads after its spawn. */
function lazy(name: string, load: () => Promise<Service>): Service {
  let real: Service | undefined
  return {
    name,
    async start(ctx) {
      const service = await load()
      if (ctx.signal.aborted) return
      real = service
      await real.start(ctx)
    },
    stop: (deadline, why) => real?.stop(deadline, why) ?? Promise.resolve(),
  }
}
