// `privatedial run`: the container's main process under tini. Start-up is a few named phases;
// after them it supervises Asterisk and reacts to signals and config changes until stopped.
import { execFileSync } from 'node:child_process'
import { chown } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { ensureCertificate, keepCertificateFresh, type Freshness } from './cert/keeper.ts'
import { certOptions } from './cert/config.ts'
import { applyToDir } from './config/apply.ts'
import { prepareAsteriskDirs, unreadableByAsterisk, type Account } from './asterisk/dirs.ts'
import { notExecutable, rx, spawnAsterisk, waitFullyBooted, type AsteriskTarget } from './asterisk/process.ts'
import { checkConfDir } from './check.ts'
import { describeUnavailable, unavailableIpv6 } from './asterisk/ipv6.ts'
import { readConfTree } from './config/files.ts'
import { ConfigError } from './base/errors.ts'
import type { Logger } from './base/log.ts'
import { reloadChanged } from './asterisk/reload.ts'
import { seed } from './config/seed.ts'
import { TEXT_TRUNKS_FILE, writeTextTrunks } from './config/text-trunks.ts'
import type { Settings } from './config/settings.ts'
import { supervise, type Supervisor } from './asterisk/supervise.ts'
import type { Watcher } from './asterisk/watch.ts'
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
  const name = settings.get('ASTERISK_USER')?.value ?? 'asterisk'
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

export async function run(opts: RunOptions): Promise<number> {
  const t0 = Date.now()
  const { settings, confDir } = opts
  const log = opts.log
  const signals = opts.signals ?? process
  const target: AsteriskTarget = { bin: settings.get('ASTERISK_BIN')?.value ?? 'asterisk', confDir }
  const phase = (name: string) => log.child(name)
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
  const certLog = phase('cert')
  const certOpts = certOptions(settings, certLog)
  await seed({ confDir, log: phase('seed'), certFiles: [certOpts.certFile, certOpts.keyFile] })
  await applyToDir({ confDir, settings, log: phase('apply') })
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

  // Asterisk reads the key as its own user; the key stays 0600, so it must be that user's.
  const ownCert = async () => {
    if (user) for (const f of [certOpts.certFile, certOpts.keyFile]) await chown(f, user.uid, user.gid)
  }
  // A certificate must exist before Asterisk starts its TLS transport; one from a CA that is slow
  // or down would hold up the PBX, so start serves what is there (or a self-signed stand-in) and
  // the renewal loop fetches the real one in the background.
  const first = await ensureCertificate(certOpts, { contactCa: false })
  await ownCert()

  // WebSMS takes webhooks even while Asterisk (re)starts: they wait in its queue.
  let websms: Websms | undefined
  const websmsPort = settings.get('WEBSMS_PORT')?.value
  if (websmsPort) {
    const { startWebsms } = await import('./websms/service.ts')
    websms = await startWebsms({
      confDir,
      port: Number(websmsPort),
      spoolDir: settings.get('WEBSMS_SPOOL_DIR')?.value ?? '/var/spool/asterisk/websms',
      log: phase('websms'),
    })
  } else phase('websms').info('WebSMS is off (WEBSMS_PORT is not set)')

  const astLog = log.child('asterisk')
  const reloadLog = phase('reload')
  // Files changed while Asterisk boots: it may have read them already or not, and its remote
  // console is not up yet; they are reloaded once it is.
  const changedDuringBoot = new Set<string>()
  const reload = async (files: string[]) => {
    // The trunks' twins follow the trunks: written before res_pjsip reads them again.
    await writeTextTrunks(confDir, reloadLog).catch((err: Error) =>
      reloadLog.error(`writing ${TEXT_TRUNKS_FILE}: ${err.message}`),
    )
    return reloadChanged(files, {
      check: async () => (await configProblems()).problems,
      rx: (c) => rx(target, c),
      log: reloadLog,
    })
  }
  const supervisor: Supervisor = supervise({
    start: () =>
      spawnAsterisk(target, {
        user: user?.name,
        onLine: (line) => {
          if (/\bERROR\[/.test(line)) astLog.error(line)
          else if (/\bWARNING\[/.test(line)) astLog.warn(line)
          else astLog.info(line)
        },
      }),
    waitReady: (_c, alive) => waitFullyBooted(target, alive),
    drain: () => rx(target, 'core stop gracefully').then(() => undefined),
    stopNow: () => rx(target, 'core stop now').then(() => undefined),
    log: phase('supervise'),
    graceMs: Number(settings.get('STOP_GRACE_SECONDS')?.value ?? 8) * 1000,
    onReady: () => {
      // Texts that waited while Asterisk was down go out now.
      websms?.flush()
      if (changedDuringBoot.size) {
        const files = [...changedDuringBoot]
        changedDuringBoot.clear()
        void reload(files)
      }
      const m = process.memoryUsage()
      log.info(`PrivateDial ready ${Date.now() - t0} ms after start`, {
        rss_mb: Math.round(m.rss / 2 ** 20),
        heap_mb: Math.round(m.heapUsed / 2 ** 20),
      })
    },
  })

  // Asterisk is running: signals go to the supervisor from now on, whatever start-up still does.
  let stopping = false
  let watcher: Watcher | undefined
  let certs: Freshness | undefined
  let mailTimer: NodeJS.Timeout | undefined
  const stop = (signal: string) => {
    if (stopping) return
    stopping = true
    log.info(`received ${signal}; shutting down`)
    clearInterval(mailTimer)
    // The drain starts now: Docker's SIGKILL comes 10 s after its SIGTERM whatever else is
    // going on, and a certificate order in flight can take longer than that.
    void certs?.stop()
    void Promise.all([watcher?.close(), websms?.close(), supervisor.stop(signal)])
  }
  const hup = () => {
    log.info('received SIGHUP; applying the environment again and reloading Asterisk')
    void (async () => {
      try {
        await applyToDir({ confDir, settings, log: phase('apply') })
        await writeTextTrunks(confDir, phase('apply'))
        const { problems } = await configProblems()
        if (problems.length) {
          for (const p of problems) reloadLog.error(p)
          reloadLog.error('not reloading: Asterisk keeps its current configuration')
          return
        }
        await rx(target, 'core reload')
        reloadLog.info('reloaded Asterisk (core reload)')
      } catch (err) {
        reloadLog.error(`SIGHUP reload failed: ${(err as Error).message}`)
      }
    })()
  }
  const onTerm = () => stop('SIGTERM')
  const onInt = () => stop('SIGINT')
  signals.on('SIGTERM', onTerm)
  signals.on('SIGINT', onInt)
  signals.on('SIGHUP', hup)

  // What Asterisk does not need to start loads after it is spawned; a stop meanwhile skips it.
  const [{ watchFiles }, { FLUSH_INTERVAL_MS, flushVoicemailSpool }] = await Promise.all([
    import('./asterisk/watch.ts'),
    import('./mail/flush.ts'),
  ])
  if (!stopping) {
    const websmsConf = join(confDir, 'websms.conf')
    watcher = watchFiles({
      files: [
        join(confDir, 'pjsip_endpoint.conf'),
        ...(websms ? [websmsConf] : []),
        ...(settings.get('WATCH_FILES')?.value.split(',') ?? []),
      ],
      log: phase('watch'),
      onChange: async (files) => {
        // websms.conf is ours, not Asterisk's: the service reloads it, or keeps the old one if it is broken.
        if (websms && files.includes(websmsConf)) {
          await websms.reload().then(
            () => reloadLog.info('WebSMS reloaded websms.conf'),
            (err: Error) =>
              reloadLog.error(`websms.conf not reloaded, the service keeps its current configuration: ${err.message}`),
          )
        }
        const changed = files.filter((f) => f !== websmsConf)
        if (!changed.length) return
        if (!supervisor.current()) {
          reloadLog.info(`Asterisk is not running; it reads ${changed.join(', ')} when it starts`)
          return
        }
        if (!supervisor.booted()) {
          for (const f of changed) changedDuringBoot.add(f)
          reloadLog.info(
            `Asterisk is still booting; ${changed.map((f) => basename(f)).join(', ')} reloaded once it is up`,
          )
          return
        }
        await reload(changed)
      },
    })

    certs = keepCertificateFresh(
      certOpts,
      async () => {
        await ownCert()
        // A TLS listener restarts in place when its files changed: new handshakes get the new
        // certificate, calls and registrations stay up.
        if (supervisor.current()) await rx(target, 'module reload res_pjsip.so')
        certLog.info('Asterisk reloaded res_pjsip for the new certificate')
      },
      { after: first },
    )

    // Mail that could not be sent waits in minivm-send's spool; retry it while we run.
    const mailLog = phase('voicemail-mail')
    const flushMail = () =>
      flushVoicemailSpool(confDir, process.env, mailLog).catch((err: Error) =>
        mailLog.error(`flushing queued voicemail e-mails failed: ${err.message}`),
      )
    mailTimer = setInterval(() => void flushMail(), FLUSH_INTERVAL_MS)
    void flushMail()
  }

  const code = await supervisor.done
  clearInterval(mailTimer)
  // A certificate order in flight is abandoned, not awaited: the next start checks again. The
  // process exits with it still open (cli.ts exits explicitly).
  void certs?.stop()
  await websms?.close()
  signals.off('SIGTERM', onTerm)
  signals.off('SIGINT', onInt)
  signals.off('SIGHUP', hup)
  await watcher?.close()
  log.info(`exiting with code ${code}`)
  return code
}
