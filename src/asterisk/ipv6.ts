// A host without IPv6 (a kernel built or booted without it, a network namespace that has none):
// the IPv6 transports can't bind, and Asterisk logs an ERROR for each and runs on without them.
// This finds them before Asterisk starts, so `run` can say so once, in words, and `health` counts
// only the transports this host can have. (A container whose interfaces merely have IPv6 turned
// off, as Docker leaves one without it, still binds [::]: nothing is missing there.)
import { createSocket } from 'node:dgram'
import { sections, templateResolver, type ConfDoc } from '../config/conf.ts'

export interface Ipv6Transport {
  name: string
  /** The address it binds, without brackets or port: `::`, `::1`, ... */
  address: string
}

/** Non-template transports (through their templates) whose bind is an IPv6 address. */
export function ipv6Transports(docs: ConfDoc[]): Ipv6Transport[] {
  const resolve = templateResolver(docs)
  return docs
    .flatMap(sections)
    .filter((s) => !s.isTemplate && resolve(s.name, 'type').at(-1) === 'transport')
    .flatMap((s) => {
      const address = /^\[([^\]]+)\]/.exec(resolve(s.name, 'bind').at(-1)?.trim() ?? '')?.[1]
      return address ? [{ name: s.name, address }] : []
    })
}

/** Why a UDP socket can't bind `address` here (the error code), or undefined when it can. */
export function cannotBind(address: string): Promise<string | undefined> {
  return new Promise((done) => {
    let socket
    try {
      socket = createSocket({ type: 'udp6', ipv6Only: true })
    } catch (err) {
      done((err as NodeJS.ErrnoException).code ?? String(err))
      return
    }
    socket.once('error', (err: NodeJS.ErrnoException) => {
      socket.close()
      done(err.code ?? err.message)
    })
    socket.bind(0, address, () => socket.close(() => done(undefined)))
  })
}

export interface Unavailable {
  names: string[]
  /** Each address that can't be bound, and why: `[::] (EAFNOSUPPORT)`. */
  why: string
}

/** The IPv6 transports that can't start on this host, or undefined when all can. */
export async function unavailableIpv6(docs: ConfDoc[]): Promise<Unavailable | undefined> {
  const transports = ipv6Transports(docs)
  const reasons = new Map<string, string | undefined>()
  for (const address of new Set(transports.map((t) => t.address))) reasons.set(address, await cannotBind(address))
  const down = transports.filter((t) => reasons.get(t.address))
  if (!down.length) return undefined
  const why = [...reasons]
    .filter(([, code]) => code)
    .map(([address, code]) => `[${address}] (${code})`)
    .join(', ')
  return { names: down.map((t) => t.name), why }
}

/** The line `run` logs, and the note `health` adds. */
export function describeUnavailable(u: Unavailable): string {
  return `IPv6 is not available on this host: binding ${u.why} failed, so transports ${u.names.join(', ')} stay down and phones reach the PBX over IPv4 only (README, "IPv6", says how to give a container IPv6)`
}
