// HOST[:PORT] as the config files and flags write it: `name:5060`, `1.2.3.4:5060`, `[::1]:5060`,
// or a bare IPv6 address, whose colons leave no room for a port. One parser for all of them.

/** The host and the port text (unchecked; absent when none is given), or undefined when it is not HOST[:PORT]. */
export function splitHostPort(value: string): { host: string; port?: string } | undefined {
  const m =
    /^\[([\da-f:.]+)\](?::(.*))?$/i.exec(value) ??
    /^([\da-f.]*:[\da-f.]*:[\da-f:.]*)$/i.exec(value) ??
    /^([\p{L}\p{N}._-]*)(?::(.*))?$/u.exec(value)
  if (!m) return undefined
  return m[2] === undefined ? { host: m[1]! } : { host: m[1]!, port: m[2] }
}

/** `host:port`, with an IPv6 address in brackets. */
export function joinHostPort(host: string, port: string | number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`
}
