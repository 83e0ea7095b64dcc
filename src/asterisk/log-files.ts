// The log files Asterisk writes (logger.conf's file channels, e.g. `security`, in astlogdir on the
// volume), kept to a size: nothing in a container rotates them, and a scanner's attempts would
// fill the disk. Past LOG_FILE_MAX_MB Asterisk is asked to rotate (`logger rotate`: it reopens
// its files, so no line is lost or half-written) and only the LOG_FILE_KEEP newest rotated files
// stay.
import { readdir, rm, stat } from 'node:fs/promises'
import { basename, dirname, isAbsolute, join } from 'node:path'
import { getValues, sections } from '../config/conf.ts'
import { readConf } from '../config/files.ts'
import { valueOf } from '../config/settings.ts'
import type { Service } from '../service.ts'

/** Channels that are not files. */
const NOT_FILES = new Set(['console', 'syslog'])
/** A backstop for file channels that log more than the console shows. */
const CHECK_INTERVAL_MS = 60_000

/** The files logger.conf writes, absolute, given astlogdir. */
export function logFiles(loggerConf: Parameters<typeof sections>[0], logDir: string): string[] {
  const names = sections(loggerConf)
    .filter((s) => s.name === 'logfiles')
    .flatMap((s) => s.entries.map((e) => e.key))
    .filter((k) => !NOT_FILES.has(k) && !k.startsWith('syslog.'))
  return [...new Set(names)].map((n) => (isAbsolute(n) ? n : join(logDir, n)))
}

/** Of the rotated siblings of `file` (file.0, file.1, file.2026-..., with their times), those past the `keep` newest. */
export function beyondKeep(file: string, siblings: { name: string; mtimeMs: number }[], keep: number): string[] {
  const base = basename(file)
  // Asterisk's rotate and sequential strategies add .N, its timestamp one .SECONDS.
  return siblings
    .filter((s) => s.name.startsWith(`${base}.`) && /^\d+$/.test(s.name.slice(base.length + 1)))
    .sort((a, b) => b.mtimeMs - a.mtimeMs)
    .slice(keep)
    .map((s) => join(dirname(file), s.name))
}

export function logFilesService(): Service {
  let timer: NodeJS.Timeout | undefined
  let stopped = false
  let checking: Promise<void> | undefined
  return {
    name: 'logfiles',
    async start(ctx) {
      const maxBytes = Number(valueOf(ctx.settings, 'LOG_FILE_MAX_MB')) * 2 ** 20
      const keep = Number(valueOf(ctx.settings, 'LOG_FILE_KEEP'))
      const asterisk = await readConf(ctx.confDir, 'asterisk.conf')
      const logDir = (asterisk && getValues(asterisk, 'directories', 'astlogdir').at(-1)) ?? '/var/log/asterisk'
      const logger = await readConf(ctx.confDir, 'logger.conf')
      const files = logger ? logFiles(logger, logDir) : []
      if (!files.length) {
        ctx.log.info('Asterisk writes no log files (logger.conf); nothing to rotate')
        return
      }
      ctx.log.info(`keeping ${files.join(', ')} under ${maxBytes / 2 ** 20} MB each, ${keep} rotated files kept`)

      let seen = 0
      const check = async () => {
        const big: string[] = []
        for (const f of files) {
          const size = (await stat(f).catch(() => undefined))?.size ?? 0
          if (size > maxBytes) big.push(`${basename(f)} ${(size / 2 ** 20).toFixed(1)} MB`)
        }
        if (!big.length) return
        await ctx.asterisk.rx('logger rotate')
        let removed = 0
        for (const f of files) {
          const dir = dirname(f)
          const siblings = await Promise.all(
            (await readdir(dir)).map(async (name) => ({ name, mtimeMs: (await stat(join(dir, name))).mtimeMs })),
          )
          for (const old of beyondKeep(f, siblings, keep)) {
            await rm(old, { force: true })
            removed++
          }
        }
        ctx.log.info(`rotated Asterisk's log files (${big.join(', ')}); removed ${removed} older ones`)
      }
      const checkOnce = () => {
        if (stopped || checking || !ctx.asterisk.booted()) return
        checking = check()
          .catch((err: Error) => ctx.log.error(`rotating Asterisk's log files: ${err.message}; tried again later`))
          .finally(() => (checking = undefined))
      }
      // What the console shows, the files mostly show too: a look at their sizes every eighth of
      // the limit that went by, so a flood can't outrun the check.
      ctx.asterisk.onLine((line) => {
        seen += line.length + 1
        if (seen < maxBytes / 8) return
        seen = 0
        checkOnce()
      })
      timer = setInterval(checkOnce, CHECK_INTERVAL_MS)
      timer.unref()
      checkOnce()
    },
    async stop() {
      stopped = true
      clearInterval(timer)
      await checking
    },
  }
}
