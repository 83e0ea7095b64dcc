// Addresses never banned: loopback (the WebSMS service and the PBX's own tools), the local
// networks (SIP_LOCAL_NET, written to local_net), the trunks (an ITSP that fails to authenticate
// now and then must not be cut off) and the BAN_ALLOW list.
import { lookup } from 'node:dns/promises'
import { BlockList, isIP } from 'node:net'
import { sections, type ConfDoc } from '../config/conf.ts'
import { readConfTree } from '../config/files.ts'
import type { Logger } from '../base/log.ts'

export const ALWAYS_ALLOWED = ['127.0.0.0/8', '::1/128', '::ffff:127.0.0.0/104']

export interface AllowSources {
  /** Addresses and networks as written (a.b.c.d, a.b.c.d/n, IPv6 likewise). */
  networks: string[]
  /** Host names to resolve (trunks named by DNS). */
  hosts: string[]
}

/** `host`, `host:port`, `[v6]:port`, `a.b.c.d/n`: the address or network part, or a host name. */
function hostPart(item: string): string {
  const v6 = /^\[([^\]]+)\](?::\d+)?$/.exec(item)
  if (v6) return v6[1]!
  if (isIP(item.split('/')[0]!)) return item
  return item.replace(/:\d+$/, '')
}

/** What the PJSIP config says is local or a trunk: local_net, remote_hosts and identify `match`. */
export function allowSources(docs: readonly ConfDoc[], extra: readonly string[]): AllowSources {
  const out: AllowSources = { networks: [...ALWAYS_ALLOWED, ...extra], hosts: [] }
  // Templates too: local_net lives in the transports' template, t_wan.
  for (const s of docs.flatMap(sections)) {
    for (const e of s.entries) {
      if (!['local_net', 'remote_hosts', 'match'].includes(e.key)) continue
      for (const raw of e.value.split(',')) {
        const item = hostPart(raw.trim())
        if (!item) continue
        if (isIP(item.split('/')[0]!)) out.networks.push(item)
        else out.hosts.push(item)
      }
    }
  }
  return out
}

/** A matcher for the allowed addresses. */
export function blockList(networks: readonly string[]): BlockList {
  const list = new BlockList()
  for (const n of networks) {
    const [addr, prefix] = n.split('/') as [string, string | undefined]
    const type = isIP(addr) === 6 ? 'ipv6' : 'ipv4'
    if (prefix === undefined) list.addAddress(addr, type)
    else list.addSubnet(addr, Number(prefix), type)
  }
  return list
}

export function isAllowed(list: BlockList, address: string): boolean {
  return list.check(address, isIP(address) === 6 ? 'ipv6' : 'ipv4')
}

/**
 * The allow list of the config in `confDir` and the settings' networks, trunk names resolved
 * unless `resolveHosts` is false (a DNS that does not answer must not hold up the start).
 * A name that does not resolve is logged and left out: the trunk then has no exemption until it
 * does (its own registrations keep working; only its failures could ban it).
 */
export async function readAllowList(
  confDir: string,
  extra: readonly string[],
  log: Logger,
  resolveHosts = true,
): Promise<{ list: BlockList; networks: string[] }> {
  const { docs } = await readConfTree(confDir, 'pjsip.conf')
  const sources = allowSources(docs, extra)
  const networks = [...sources.networks]
  for (const host of resolveHosts ? new Set(sources.hosts) : []) {
    try {
      for (const a of await lookup(host, { all: true })) networks.push(a.address)
    } catch (err) {
      log.warn(
        `trunk host ${host} does not resolve (${(err as NodeJS.ErrnoException).code ?? String(err)}); its address is not exempt from bans until it does`,
      )
    }
  }
  return { list: blockList(networks), networks }
}
