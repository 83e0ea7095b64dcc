// A small network of the test's own: a namespace for the PBX and one per peer (a scanner, a
// phone), each peer wired to the PBX by a veth pair with IPv4 and IPv6 addresses. The
// links are made inside the namespaces (never in the machine's own), and everything goes with
// remove(). Needs root and iproute2.
import { execFile } from 'node:child_process'
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'

const exec = promisify(execFile)

/** Why the machine can't make namespaces, or undefined when it can. */
export async function netnsUnavailable(): Promise<string | undefined> {
  if (process.getuid?.() !== 0) return 'network namespaces need root'
  const probe = `pdprobe${process.pid}`
  try {
    await exec('ip', ['netns', 'add', probe])
    await exec('ip', ['netns', 'del', probe])
    return undefined
  } catch (err) {
    return `\`ip netns add\` fails here: ${(err as Error).message.split('\n')[0]}`
  }
}

/** Why nft can't be run in a namespace, or undefined when it can. */
export async function nftUnavailable(): Promise<string | undefined> {
  try {
    await exec('nft', ['--version'])
    return undefined
  } catch {
    return 'nft is not installed (Debian: apt-get install nftables)'
  }
}

export interface Peer {
  /** Its namespace. */
  netns: string
  v4: string
  v6: string
  /** The PBX's addresses on this peer's link. */
  pbxV4: string
  pbxV6: string
}

export interface Lab {
  /** The PBX's namespace. */
  pbx: string
  peers: Record<string, Peer>
  /** Runs a command in a namespace. */
  run(netns: string, cmd: string[]): Promise<string>
  /** An executable that runs `bin` with its arguments in the PBX's namespace (ASTERISK_BIN). */
  wrap(bin: string): Promise<string>
  remove(): Promise<void>
}

let made = 0

/**
 * Peer i's link is 198.18.i.0/24 and 2001:db8:77:i::/64 (benchmark and documentation addresses:
 * outside the shipped local_net, which has the unique-local fc00::/7, so the PBX treats them as
 * the internet), the PBX at .1 / ::1.
 */
export async function makeLab(names: string[]): Promise<Lab> {
  const id = `pd${process.pid % 100000}x${made++}`
  const pbx = `${id}-pbx`
  const dir = await mkdtemp(join(tmpdir(), 'pd-netns-'))
  const run = async (netns: string, cmd: string[]) =>
    (await exec('ip', ['netns', 'exec', netns, ...cmd], { maxBuffer: 16 * 2 ** 20 })).stdout
  const spaces: string[] = []
  const remove = async () => {
    for (const ns of spaces.reverse()) await exec('ip', ['netns', 'del', ns]).catch(() => undefined)
    await rm(dir, { recursive: true, force: true })
  }
  try {
    await exec('ip', ['netns', 'add', pbx])
    spaces.push(pbx)
    await run(pbx, ['ip', 'link', 'set', 'lo', 'up'])
    const peers: Record<string, Peer> = {}
    for (const [i, name] of names.entries()) {
      const n = i + 1
      const ns = `${id}-${name}`
      await exec('ip', ['netns', 'add', ns])
      spaces.push(ns)
      const peer: Peer = {
        netns: ns,
        v4: `198.18.${n}.2`,
        v6: `2001:db8:77:${n}::2`,
        pbxV4: `198.18.${n}.1`,
        pbxV6: `2001:db8:77:${n}::1`,
      }
      await exec('ip', ['-n', pbx, 'link', 'add', `p${n}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns])
      for (const [space, dev, v4, v6] of [
        [pbx, `p${n}`, peer.pbxV4, peer.pbxV6],
        [ns, 'eth0', peer.v4, peer.v6],
      ] as const) {
        await exec('ip', ['-n', space, 'addr', 'add', `${v4}/24`, 'dev', dev])
        // nodad: usable at once, not after duplicate address detection's second or two.
        await exec('ip', ['-n', space, 'addr', 'add', `${v6}/64`, 'dev', dev, 'nodad'])
        await exec('ip', ['-n', space, 'link', 'set', dev, 'up'])
        await exec('ip', ['-n', space, 'link', 'set', 'lo', 'up'])
      }
      peers[name] = peer
    }
    return {
      pbx,
      peers,
      run,
      wrap: async (bin) => {
        const path = join(dir, `in-${pbx}`)
        await writeFile(path, `#!/bin/sh\nexec ip netns exec ${pbx} ${bin} "$@"\n`)
        await chmod(path, 0o755)
        return path
      },
      remove,
    }
  } catch (err) {
    await remove()
    throw err
  }
}
