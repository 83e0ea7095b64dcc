// The ban service: reads Asterisk's security events from its console output, bans addresses that
// fail too often (policy.ts), keeps them out with nftables or, without NET_ADMIN, through
// Asterisk itself, and keeps the bans on the volume across restarts.
//
// Asterisk's output arrives on the same event loop that supervises it, so a line costs a
// substring test, and a parse only when it is a security event; nftables, the ACL file, the
// reload and the save run later, one batch at a time, whatever the flood.
import { watch, type FSWatcher } from 'node:fs'
import { mkdir, rename } from 'node:fs/promises'
import type { BlockList } from 'node:net'
import type { Logger } from '../base/log.ts'
import { valueOf, type Settings } from '../config/settings.ts'
import type { Service, ServiceContext } from '../service.ts'
import { aclAddresses, aclProblem, aclReloader, writeAcl, ACL_FILE } from './acl.ts'
import { isAllowed, readAllowList } from './allow.ts'
import { isSecurityEventLine, normalizeAddress, parseSecurityEvent } from './events.ts'
import { addScript, removeScript, runNft, setupScript, teardownScript, TABLE } from './nft.ts'
import { BanPolicy, duration, type Ban, type PolicyConfig } from './policy.ts'
import { liftDir, liftDone, liftRequests, loadBans, saveBans, type Mode } from './store.ts'

/** See PolicyConfig.maxTracked: ~1 MB at most, far beyond a residential PBX's honest callers. */
const MAX_TRACKED = 10_000
/** One nftables element or ACL line each; a reload of 10,000 ACL lines still takes well under a second. */
const MAX_BANS = 10_000
/** Trunks named by DNS may move; their addresses are looked up again this often. */
const ALLOW_REFRESH_MS = 5 * 60_000
const SAVE_INTERVAL_MS = 1000
/** PJSIP's two lines for a packet its ACL refused: acl.c's NOTICE and res_pjsip_acl.c's WARNING. */
const REFUSED = /SIP ACL: Rejecting '([^']+)'|Incoming SIP message from (\[[^\]]+\]|[^\s:]+):\d+ did not pass ACL test/

export interface BanServiceOptions {
  /** nft's argv (tests run it inside the network namespace they made). */
  nft?: readonly string[]
  now?: () => number
}

export interface BanService extends Service {
  /** Resolves once every ban and unban decided so far is enforced and saved. */
  settled(): Promise<void>
  /** How bans are enforced, once started. */
  mode(): Mode | undefined
  /**
   * Whether a line of Asterisk's output is one this service sums up, so run's log leaves it out:
   * every security event (one per attempt; the ban is the line that counts), and PJSIP's refusal
   * of an address this service banned (two per packet while the ACL keeps it out).
   */
  quiet(line: string): boolean
}

export function policyConfig(settings: Settings): PolicyConfig {
  const num = (name: string) => Number(valueOf(settings, name))
  return {
    threshold: num('BAN_THRESHOLD'),
    windowMs: num('BAN_WINDOW_SECONDS') * 1000,
    banMs: num('BAN_TIME_SECONDS') * 1000,
    repeatFactor: num('BAN_REPEAT_FACTOR'),
    maxBanMs: num('BAN_MAX_SECONDS') * 1000,
    maxTracked: MAX_TRACKED,
    maxBans: MAX_BANS,
  }
}

interface Enforcer {
  mode: Mode
  /** Makes the enforced set what the policy holds: `add` and `remove` are what changed. */
  apply(add: readonly Ban[], remove: readonly string[]): Promise<void>
  /** Asterisk (re)started. */
  ready(): Promise<void>
  stop(): Promise<void>
}

export function banService(opts: BanServiceOptions = {}): BanService {
  const now = opts.now ?? Date.now
  const nftCommand = opts.nft ?? ['nft']
  let running = false
  let stopped = false
  let log: Logger
  let policy: BanPolicy
  let file = ''
  let allow: BlockList | undefined
  let enforcer: Enforcer | undefined
  let expiryTimer: NodeJS.Timeout | undefined
  let allowTimer: NodeJS.Timeout | undefined
  let watcher: FSWatcher | undefined

  // Changes waiting to be enforced, with the line each logs once it is.
  const adds = new Map<string, Ban>()
  const removes = new Map<string, string>()
  let dirty = false
  let pumping: Promise<void> | undefined

  const pump = async () => {
    while (dirty) {
      dirty = false
      const add = [...adds.values()]
      const remove = [...removes]
      adds.clear()
      removes.clear()
      if (enforcer && (add.length || remove.length)) {
        try {
          await enforcer.apply(
            add,
            remove.map(([a]) => a),
          )
          for (const b of add)
            log.info(`banned ${b.address} for ${duration(b.until - b.since)}: ${b.reason}`, {
              failures: b.count,
              strike: b.strike,
              until: new Date(b.until).toISOString(),
              by: enforcer.mode,
            })
          for (const [address, why] of remove) log.info(`unbanned ${address}: ${why}`, { by: enforcer.mode })
        } catch (err) {
          log.error(
            `bans not enforced (${add.length} to add, ${remove.length} to lift): ${(err as Error).message}; retried with the next change`,
          )
          for (const b of add) if (policy.isBanned(b.address)) adds.set(b.address, b)
          for (const [a, why] of remove) if (!policy.isBanned(a)) removes.set(a, why)
        }
      }
      // Under a flood the file is written once a second, not after every batch: each write is
      // the whole list, and a crash loses at most the last second's bans.
      if (!dirty || now() - savedAt >= SAVE_INTERVAL_MS) await save()
    }
    pumping = undefined
  }
  let savedAt = 0
  const save = async () => {
    savedAt = now()
    try {
      await saveBans(file, { version: 1, mode: enforcer?.mode ?? 'off', savedAt, ...policy.snapshot() })
    } catch (err) {
      log.error(`bans not saved to ${file}: ${(err as Error).message}; they are lost on restart`)
    }
  }
  const kick = (): Promise<void> => {
    dirty = true
    pumping ??= pump()
    return pumping
  }
  const ban = (b: Ban) => {
    removes.delete(b.address)
    adds.set(b.address, b)
  }
  const unban = (address: string, why: string) => {
    adds.delete(address)
    removes.set(address, why)
  }

  const scheduleExpiry = () => {
    clearTimeout(expiryTimer)
    const next = policy.nextExpiry()
    if (next === undefined || !running) return
    expiryTimer = setTimeout(
      () => {
        for (const b of policy.expire(now())) unban(b.address, `ban ended (strike ${b.strike}, ${b.reason})`)
        void kick()
        scheduleExpiry()
      },
      Math.min(2 ** 31 - 1, Math.max(0, next - now())),
    )
    expiryTimer.unref()
  }

  const onLine = (line: string) => {
    if (!running || !line.includes('SECURITY[')) return
    const ev = parseSecurityEvent(line)
    if (!ev) return
    if (ev.kind === 'success') return policy.success(ev.address)
    if (allow && isAllowed(allow, ev.address)) {
      log.debug(`${ev.address} is never banned; not counting: ${ev.reason}`)
      return
    }
    const out = policy.failure(ev.address, ev.reason, now())
    if (!out) return
    ban(out.ban)
    if (out.evicted) unban(out.evicted.address, `making room: more than ${MAX_BANS} bans at once`)
    void kick()
    scheduleExpiry()
  }

  // One pass at a time: a burst of watch events while lifting becomes one more pass.
  let lifting: Promise<void> | undefined
  let liftAgain = false
  const takeLifts = async () => {
    do {
      liftAgain = false
      for (const name of await liftRequests(file)) {
        const address = normalizeAddress(name)
        if (address && policy.lift(address)) unban(address, 'lifted (privatedial bans delete)')
        else log.info(`lift of ${name} asked; it is not banned`)
        await kick()
        await liftDone(file, name)
      }
    } while (liftAgain)
    lifting = undefined
  }
  const onLiftRequest = () => {
    liftAgain = true
    lifting ??= takeLifts().catch((err: Error) => {
      lifting = undefined
      log.error(`reading lift requests in ${liftDir(file)}: ${err.message}`)
    })
  }

  const refreshAllow = async (ctx: ServiceContext, resolveHosts = true) => {
    const extra = ctx.settings.get('BAN_ALLOW')?.value.split(',') ?? []
    const local = ctx.settings.get('SIP_LOCAL_NET')?.value.split(',') ?? []
    const { list } = await readAllowList(ctx.confDir, [...extra, ...local], log, resolveHosts)
    allow = list
    for (const b of policy.bans())
      if (isAllowed(list, b.address) && policy.lift(b.address)) unban(b.address, 'it is on the allow list now')
  }

  const nftEnforcer = (): Enforcer => ({
    mode: 'nft',
    apply: async (add, remove) => {
      try {
        await runNft(nftCommand, [...removeScript(remove), ...addScript(add, now())].join('\n'))
      } catch (err) {
        // Someone else's `nft flush ruleset` (a firewall reload) takes our table with it.
        log.warn(`updating nftables failed (${(err as Error).message}); making table ${TABLE} anew`)
        await runNft(nftCommand, setupScript(policy.bans(), now()))
      }
    },
    ready: async () => undefined,
    stop: async () => {
      await runNft(nftCommand, teardownScript())
      log.info(`removed nftables table ${TABLE}`)
    },
  })

  const aclEnforcer = (ctx: ServiceContext): Enforcer => {
    // Changed on disk but not yet read by a running Asterisk: reloaded once one is up. A file
    // with the same addresses as before needs no reload (an Asterisk that started since read it).
    let unread = false
    const reloadAcl = aclReloader(ctx.confDir, ctx.asterisk)
    const reload = async () => {
      if (!ctx.asterisk.booted()) return
      const why = await reloadAcl()
      if (why) log.error(`PJSIP not reloaded for the bans: ${why}`)
      else unread = false
    }
    return {
      mode: 'asterisk',
      apply: async () => {
        const want = policy.bans().map((b) => b.address)
        const had = new Set(await aclAddresses(ctx.confDir))
        await writeAcl(ctx.confDir, want)
        if (had.size !== want.length || want.some((a) => !had.has(a))) unread = true
        if (unread) await reload()
      },
      ready: async () => {
        if (unread) await reload()
      },
      stop: async () => undefined,
    }
  }

  const chooseEnforcer = async (ctx: ServiceContext, mode: string): Promise<Enforcer> => {
    if (mode !== 'asterisk') {
      try {
        await runNft(nftCommand, setupScript(policy.bans(), now()))
        log.info(
          `bans are enforced by nftables (table ${TABLE}): packets from a banned address are dropped before Asterisk sees them`,
          { mode: 'nft', setting: mode },
        )
        // An ACL an earlier run left (it had no NET_ADMIN) would outlive its bans.
        if ((await aclAddresses(ctx.confDir)).length) {
          await writeAcl(ctx.confDir, [])
          const why = ctx.asterisk.booted() ? await aclReloader(ctx.confDir, ctx.asterisk)() : undefined
          if (why) log.error(`PJSIP not reloaded to drop the old ACL: ${why}`)
        }
        return nftEnforcer()
      } catch (err) {
        const why = `${(err as Error).message}; with Docker, add \`cap_add: [NET_ADMIN]\` to the service`
        if (mode === 'nft') log.error(`BAN_MODE=nft, but nftables can't be used: ${why}`)
        else log.info(`nftables can't be used: ${why}`)
      }
    }
    const enforcer = aclEnforcer(ctx)
    const problem = await aclProblem(ctx.confDir)
    if (problem) log.error(`bans can't be enforced by Asterisk either: ${problem}`)
    await enforcer.apply([], [])
    log.info(
      `bans are enforced by Asterisk: PJSIP answers a banned address with 403 (ACL in ${ACL_FILE}); its packets still reach the container`,
      { mode: 'asterisk', setting: mode },
    )
    return enforcer
  }

  return {
    name: 'bans',
    settled: () => Promise.all([pumping, lifting]).then(() => undefined),
    mode: () => enforcer?.mode,
    quiet(line) {
      if (isSecurityEventLine(line)) return true
      if (!running || !line.includes(' ACL')) return false
      const m = REFUSED.exec(line)
      const address = m && normalizeAddress(m[1] ?? m[2]!)
      return !!address && policy.isBanned(address)
    },

    async start(ctx) {
      log = ctx.log
      file = valueOf(ctx.settings, 'BAN_FILE')!
      policy = new BanPolicy(policyConfig(ctx.settings))
      const mode = valueOf(ctx.settings, 'BAN_MODE')!
      if (mode === 'off') {
        if ((await aclAddresses(ctx.confDir)).length) await writeAcl(ctx.confDir, [])
        log.info('bans are off (BAN_MODE=off): failed logins are not counted and no address is banned')
        return
      }
      try {
        const saved = await loadBans(file)
        if (saved) policy.restore(saved, now())
      } catch (err) {
        const aside = `${file}.unreadable`
        await rename(file, aside).catch(() => undefined)
        log.error(
          `bans in ${file} can't be read (${(err as Error).message}); moved it to ${aside} and started with none`,
        )
      }
      // Trunks named by DNS are added in the background: a resolver that hangs must not hold up
      // the start, and a trunk's few failures in the meantime are far from a ban.
      await refreshAllow(ctx, false)
      const resolved = refreshAllow(ctx).catch((err: Error) => log.error(`resolving the trunks' names: ${err.message}`))
      // Before the enforcer is chosen: an Asterisk that boots meanwhile is either seen booted by it
      // or reported here.
      ctx.asterisk.onReady(() => {
        if (!stopped)
          enforcer
            ?.ready()
            .catch((err: Error) => log.error(`reloading ${ACL_FILE} after Asterisk started: ${err.message}`))
      })
      enforcer = await chooseEnforcer(ctx, mode)
      running = true
      ctx.asterisk.onLine(onLine)
      const restored = policy.bans()
      log.info(
        restored.length
          ? `${restored.length} bans restored from ${file}: ${restored.map((b) => b.address).join(', ')}`
          : `no bans in force (${file})`,
        { threshold: policy.cfg.threshold, window_s: policy.cfg.windowMs / 1000, ban_s: policy.cfg.banMs / 1000 },
      )
      scheduleExpiry()
      await kick()
      await mkdir(liftDir(file), { recursive: true })
      watcher = watch(liftDir(file), onLiftRequest)
      onLiftRequest()
      void resolved.then(() => (running ? kick() : undefined))
      allowTimer = setInterval(() => {
        refreshAllow(ctx).then(kick, (err: Error) => log.error(`refreshing the allow list: ${err.message}`))
      }, ALLOW_REFRESH_MS)
      allowTimer.unref()
    },

    async stop(deadline) {
      running = false
      stopped = true
      clearTimeout(expiryTimer)
      clearInterval(allowTimer)
      watcher?.close()
      const late = new Promise<void>((r) => setTimeout(r, Math.max(0, deadline - now())).unref())
      await Promise.race([Promise.all([pumping, lifting]), late])
      try {
        await Promise.race([enforcer?.stop(), late])
      } catch (err) {
        log.error(`removing the bans' enforcement: ${(err as Error).message}`)
      }
    },
  }
}
