// Whether each trunk that registers with its ITSP is registered: an unregistered trunk gets no
// calls or texts from an ITSP that sends them to the registered Contact. Read by `health`, and
// logged by the registrations service whenever it changes.
import type { Service } from '../service.ts'
import { sections, templateResolver, type ConfDoc } from '../config/conf.ts'
import { readConfTree } from '../config/files.ts'

/** Trunks (wizard sections, not templates) with sends_registrations = yes, through their templates. */
export function registeringTrunks(docs: ConfDoc[]): string[] {
  const resolve = templateResolver(docs)
  const yes = (name: string, key: string) => /^(yes|true|on|1)$/i.test(resolve(name, key).at(-1) ?? '')
  return docs
    .flatMap(sections)
    .filter((s) => !s.isTemplate && resolve(s.name, 'type').at(-1) === 'wizard' && yes(s.name, 'sends_registrations'))
    .map((s) => s.name)
}

/**
 * Trunk -> status of its registrations from `pjsip show registrations` (lines
 * ` <trunk>-reg-<n>/<server uri>  [<auth>]  <status>  (exp. ...)`, the wizard's names). A trunk with
 * several ITSP hosts has one registration per host: it counts as Registered only if all are.
 */
export function listedRegistrations(output: string): Map<string, string> {
  const out = new Map<string, string>()
  for (const m of output.matchAll(
    /^\s*(\S+)-reg-\d+\/\S+\s+(?:\S+\s+)?(Registered|Unregistered|Rejected|Stopped)\b/gm,
  )) {
    const [, trunk, status] = m as unknown as [string, string, string]
    if ((out.get(trunk) ?? 'Registered') === 'Registered') out.set(trunk, status)
  }
  return out
}

export interface TrunkRegistration {
  trunk: string
  /** Registered, Unregistered (not yet, or retrying), Rejected, Stopped, or missing (Asterisk has none). */
  status: string
}

/** Each registering trunk of the config in `confDir` with its status in `pjsip show registrations` output. */
export async function trunkRegistrations(confDir: string, output: string): Promise<TrunkRegistration[]> {
  const listed = listedRegistrations(output)
  // The wizard reads pjsip_wizard.conf, which includes pjsip_endpoint.conf.
  const tree = await readConfTree(confDir, 'pjsip_wizard.conf')
  return registeringTrunks(tree.docs).map((trunk) => ({ trunk, status: listed.get(trunk) ?? 'missing' }))
}

/** One line for `health` and the log: "itsp:a registered, itsp:b not registered (Rejected)". */
export function describeRegistrations(regs: TrunkRegistration[]): string {
  return regs
    .map((r) => (r.status === 'Registered' ? `${r.trunk} registered` : `${r.trunk} not registered (${r.status})`))
    .join(', ')
}

/**
 * Logs each registering trunk's status when Asterisk is (re)started and whenever it changes,
 * checked every `intervalMs`: "trunk registered" (info) or "trunk not registered" (warn), with
 * trunk= and status= fields.
 */
export function registrationsService({ intervalMs = 30_000 }: { intervalMs?: number } = {}): Service {
  let timer: NodeJS.Timeout | undefined
  let stopped = false
  return {
    name: 'registrations',
    start: async (ctx) => {
      const last = new Map<string, string>()
      let checking = false
      const check = async () => {
        if (checking || stopped) return
        checking = true
        try {
          const output = await ctx.asterisk.rx('pjsip show registrations')
          for (const { trunk, status } of await trunkRegistrations(ctx.confDir, output)) {
            if (last.get(trunk) === status) continue
            last.set(trunk, status)
            if (status === 'Registered') ctx.log.info('trunk registered', { trunk, status })
            else ctx.log.warn('trunk not registered', { trunk, status })
          }
        } catch (err) {
          // Asterisk is down or restarting: onReady checks again once it is back.
          ctx.log.debug('registrations not checked', { reason: (err as Error).message })
        } finally {
          checking = false
        }
      }
      ctx.asterisk.onReady(() => {
        last.clear()
        void check()
      })
      timer = setInterval(() => void check(), intervalMs)
      timer.unref()
    },
    stop: async () => {
      stopped = true
      clearInterval(timer)
    },
  }
}
