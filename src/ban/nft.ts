// Bans in nftables: a table of our own in the container's network namespace, with a timed set
// per address family; the input hook drops what comes from a banned address before Asterisk sees
// it. Nothing else in the ruleset is read or touched, and the table goes on stop.
import { spawn } from 'node:child_process'
import { isIP } from 'node:net'

export const TABLE = 'inet privatedial'

const setOf = (address: string) => (isIP(address) === 6 ? 'banned6' : 'banned4')

/** An element with the time it has left; nftables drops it by itself when that runs out. */
const element = (address: string, ms: number) => `${address} timeout ${Math.max(1000, Math.ceil(ms))}ms`

export interface Timed {
  address: string
  until: number
}

/** The whole table, replacing any left by an earlier run, with `bans` in it. */
export function setupScript(bans: readonly Timed[], now: number): string {
  return [
    // Declaring it first makes the delete succeed whether or not it was there.
    `table ${TABLE} {}`,
    `delete table ${TABLE}`,
    `table ${TABLE} {`,
    '  set banned4 { type ipv4_addr; flags timeout; }',
    '  set banned6 { type ipv6_addr; flags timeout; }',
    '  chain input {',
    '    type filter hook input priority filter - 10; policy accept;',
    '    ip saddr @banned4 counter drop',
    '    ip6 saddr @banned6 counter drop',
    '  }',
    '}',
    ...addScript(bans, now),
  ].join('\n')
}

/**
 * Adds bans. Each is added, deleted and added again: an `add` of an element that is there keeps
 * its old timeout, and a `delete` of one that is not fails the whole batch.
 */
export function addScript(bans: readonly Timed[], now: number): string[] {
  return bans.flatMap((b) => {
    const set = `${TABLE} ${setOf(b.address)}`
    return [
      `add element ${set} { ${b.address} }`,
      `delete element ${set} { ${b.address} }`,
      `add element ${set} { ${element(b.address, b.until - now)} }`,
    ]
  })
}

/** Removes bans, whether or not nftables has already timed them out. */
export function removeScript(addresses: readonly string[]): string[] {
  return addresses.flatMap((a) => {
    const set = `${TABLE} ${setOf(a)}`
    return [`add element ${set} { ${a} }`, `delete element ${set} { ${a} }`]
  })
}

export const teardownScript = () => [`table ${TABLE} {}`, `delete table ${TABLE}`].join('\n')

export class NftError extends Error {
  constructor(command: readonly string[], detail: string) {
    super(`${command.join(' ')} -f -: ${detail}`)
    this.name = 'NftError'
  }
}

/** Runs an nft script in one transaction: all of it applies or none. `command` is nft's argv. */
export function runNft(command: readonly string[], script: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const [bin, ...args] = command as [string, ...string[]]
    const child = spawn(bin, [...args, '-f', '-'], { stdio: ['pipe', 'ignore', 'pipe'] })
    let stderr = ''
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    child.once('error', (err: NodeJS.ErrnoException) =>
      reject(new NftError(command, err.code === 'ENOENT' ? `${bin} is not installed` : err.message)),
    )
    child.once('close', (code) => {
      if (code === 0) resolve()
      else reject(new NftError(command, stderr.trim().split('\n').slice(0, 3).join(' ') || `exit ${code}`))
    })
    child.stdin.on('error', () => undefined)
    child.stdin.end(script + '\n')
  })
}
