// Ports for the tests' own peers (Asterisk, sipp, SMTP and ACME servers), picked so that nothing
// else takes them between the pick and the peer's bind.
import { createSocket } from 'node:dgram'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'

/**
 * Where ports are picked: just below the kernel's ephemeral range (32768-60999 by default). A
 * port from listen(0) is one the kernel may hand to the next outgoing socket of any process (an
 * AMI or SMTP client), and it did: a sipp phone found its port taken and the test saw no answer.
 */
function pickRange(): { first: number; last: number } {
  const ephemeralFirst = (() => {
    try {
      return Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[0])
    } catch {
      return 32_768
    }
  })()
  const last = Math.max(ephemeralFirst - 1, 11_000)
  return { first: Math.max(last - 12_000, 10_200), last }
}

const handedOut = new Set<number>()

/**
 * A port free for both UDP and TCP on 127.0.0.1 (SIP listens on both), and on ::1 where the host
 * has it, and not handed out before in this process: a trunk's port is reserved long before its
 * sipp binds it. `also`: offsets of ports that must be free with it (sipp's video port is its media
 * port + 2).
 */
export async function freePort(also: number[] = []): Promise<number> {
  const { first, last } = pickRange()
  const hosts = ['127.0.0.1', ...((await hasLoopback6()) ? ['::1'] : [])]
  for (let tries = 0; tries < 1000; tries++) {
    const port = first + Math.floor(Math.random() * (last - first - Math.max(0, ...also)))
    const ports = [port, ...also.map((o) => port + o)]
    if (ports.some((p) => handedOut.has(p))) continue
    const free = await Promise.all(
      ports.flatMap((p) => hosts.flatMap((h) => [bindable(p, 'udp', h), bindable(p, 'tcp', h)])),
    )
    if (free.every(Boolean)) {
      for (const p of ports) handedOut.add(p)
      return port
    }
  }
  throw new Error(`no free port between ${first} and ${last} after 1000 tries`)
}

/** Whether nothing holds `port` on `host` (a loopback address) for this transport. */
export function bindable(port: number, transport: 'udp' | 'tcp', host = '127.0.0.1'): Promise<boolean> {
  return new Promise((done) => {
    if (transport === 'udp') {
      const s = createSocket(host.includes(':') ? 'udp6' : 'udp4')
      s.once('error', () => done(false))
      s.bind(port, host, () => s.close(() => done(true)))
    } else {
      const server = createServer()
      server.once('error', () => done(false))
      server.listen(port, host, () => server.close(() => done(true)))
    }
  })
}

let loopback6: Promise<boolean> | undefined
/** Whether this host has ::1 (a container without IPv6 has not). */
export const hasLoopback6 = (): Promise<boolean> => (loopback6 ??= bindable(0, 'udp', '::1'))
