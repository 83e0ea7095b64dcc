// The environment variables PrivateDial reads: one table drives parsing, validation, `--help`, the
// README table (checked by test/readme.ts) and what `apply` writes (apply.ts).
import { mustBe } from '../base/errors.ts'
import { isIP } from 'node:net'

export type Group = 'SIP' | 'Media' | 'Dial plan' | 'Voicemail mail' | 'TLS' | 'Runtime' | 'WebSMS' | 'Texts' | 'Bans'

export interface Setting {
  name: string
  group: Group
  doc: string
  /** Shown in docs; where it is a file's value, the file keeps what the user wrote while unset. */
  default: string
  /**
   * The value the code uses while the variable is unset, where that is not the file's own value:
   * typed here once and read through valueOf, never again at the point of use.
   */
  value?: string
  /** Human description of what is allowed, used in error messages. */
  allowed: string
  /** Returns the normalised value, or a reason it is not allowed. */
  parse: (raw: string) => { ok: string } | { error: string }
  /** Also readable from NAME_FILE; never logged or printed. */
  secret?: boolean
  /** Older names still accepted (the seed spells COUNTRY_CODE as CONTRY_CODE). */
  aliases?: string[]
  /** Where `apply` writes it while set: the table is the one source for apply's plan and the docs. */
  writes?: Write[]
  /** What the README says it writes, where that is not a file/section/key (SMTP_PASSWORD). */
  writesNote?: string
}

/**
 * One key a variable owns while it is set. `as` says how the value becomes the key's values (apply.ts
 * holds those edits): `value` as is (the default), `list` one line per item, `port` the port of an
 * address:port bind, `mailcmd` the minivm-send flag `flag` within minivm.conf's mailcmd.
 */
export interface Write {
  file: string
  section: string
  key: string
  as?: 'value' | 'list' | 'port' | 'mailcmd'
  flag?: string
  /**
   * Only the value, or list items, of this address family (a host name counts as IPv4): NAT is per
   * family, and pjsip_transport.conf has a template for each. Nothing of it: the key is left alone.
   */
  family?: 4 | 6
}

/** A Write as the README's "written to" column says it. */
export function describeWrite(w: Write): string {
  const what = w.as === 'list' ? ' (one line each)' : w.as === 'port' ? ' port' : w.flag ? ` ${w.flag}` : ''
  const family = w.family === 6 ? ' (IPv6 ones)' : w.family === 4 ? ' (IPv4 ones and names)' : ''
  return `${w.file} [${w.section}] ${w.key}${what}${family}`
}

type Parse = Setting['parse']

const ok = (v: string) => ({ ok: v })
const bad = (why: string) => ({ error: why })

const port: Parse = (raw) => {
  if (!/^\d{1,5}$/.test(raw)) return bad('not a number')
  const n = Number(raw)
  return n >= 1 && n <= 65535 ? ok(String(n)) : bad('out of range')
}

const hostLabel = /^(?!-)[a-z0-9-]{1,63}(?<!-)$/i
export function isHostname(s: string): boolean {
  if (s.length > 253) return false
  const labels = s.replace(/\.$/, '').split('.')
  return labels.every((l) => hostLabel.test(l)) && !/^\d+$/.test(labels.at(-1) ?? '')
}

const host: Parse = (raw) =>
  isIP(raw) || isHostname(raw) ? ok(raw.toLowerCase()) : bad('not a host name or IP address')
const hostname: Parse = (raw) => (isHostname(raw) ? ok(raw.toLowerCase()) : bad('not a host name'))

function cidr(s: string): string | undefined {
  const [addr = '', prefix, ...rest] = s.split('/')
  const family = isIP(addr)
  if (!family || rest.length) return undefined
  if (prefix === undefined) return addr
  const max = family === 4 ? 32 : 128
  if (!/^\d{1,3}$/.test(prefix) || Number(prefix) > max) return undefined
  return `${addr}/${Number(prefix)}`
}

const cidrList: Parse = (raw) => {
  const items = raw.split(/[\s,]+/).filter(Boolean)
  if (!items.length) return bad('empty list')
  const out: string[] = []
  for (const item of items) {
    const c = cidr(item)
    if (!c) return bad(`\`${item}\` is not an address or address/prefix`)
    out.push(c)
  }
  return ok(out.join(','))
}

const oneOf =
  (...values: string[]): Parse =>
  (raw) => {
    const v = raw.toLowerCase()
    return values.includes(v) ? ok(v) : bad('not one of the allowed values')
  }

const intRange =
  (min: number, max: number): Parse =>
  (raw) => {
    if (!/^\d+$/.test(raw)) return bad('not a whole number')
    const n = Number(raw)
    return n >= min && n <= max ? ok(String(n)) : bad('out of range')
  }

/** One line of printable text: it ends up in config files and command lines. */
const text: Parse = (raw) =>
  /^[^\x00-\x1f\x7f]+$/.test(raw) ? ok(raw) : bad('empty or contains control characters (newline, tab, ...)')

const email: Parse = (raw) =>
  /^[^\s@<>;,"'`\\]+@[^\s@<>;,"'`\\]+\.[^\s@<>;,"'`\\]+$/.test(raw) ? ok(raw) : bad('not an e-mail address')

const path: Parse = (raw) => (raw.startsWith('/') && !/[\x00-\x1f]/.test(raw) ? ok(raw) : bad('not an absolute path'))

const pathList: Parse = (raw) => {
  const items = raw
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
  for (const p of items) if (!('ok' in path(p))) return bad(`\`${p}\` is not an absolute path`)
  return ok(items.join(','))
}

const timezone: Parse = (raw) =>
  /^[A-Za-z0-9_+-]+(\/[A-Za-z0-9_+-]+)*$/.test(raw) && !raw.includes('..') ? ok(raw) : bad('not a time zone name')

const hostnameList: Parse = (raw) => {
  const items = raw.split(/[\s,]+/).filter(Boolean)
  if (!items.length) return bad('empty list')
  for (const h of items) if (!isHostname(h.replace(/^\*\./, ''))) return bad(`\`${h}\` is not a host name`)
  return ok(items.map((h) => h.toLowerCase()).join(','))
}

const acmeDirectory: Parse = (raw) => {
  const v = raw.trim()
  if (/^(production|staging)$/i.test(v)) return ok(v.toLowerCase())
  return /^https:\/\/[^\s/]+/i.test(v) && URL.canParse(v) ? ok(v) : bad('not production, staging or an https:// URL')
}

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600, d: 86_400 }

/** A duration: whole seconds, or a number with s, m, h or d; normalised to seconds. */
const duration: Parse = (raw) => {
  const m = /^(\d{1,9})([smhd]?)$/.exec(raw.trim())
  if (!m) return bad('not a duration')
  const seconds = Number(m[1]) * UNITS[m[2] || 's']!
  return seconds >= 1 ? ok(String(seconds)) : bad('must be at least 1 s')
}

/**
 * Emergency numbers: short digits, so the dial plan's rewriting of national (0 and at least 7
 * digits) and international (00 and a digit not 0) numbers in dp_lookup never turns one into
 * another number before the dial plan sees it is one.
 */
export const EMERGENCY_NUMBER = /^(?!00[1-9])\d{2,6}$/

const numberList: Parse = (raw) => {
  const items = raw.split(/[\s,]+/).filter(Boolean)
  if (!items.length) return bad('empty list')
  const wrong = items.find((n) => !EMERGENCY_NUMBER.test(n))
  return wrong === undefined
    ? ok(items.join(','))
    : bad(`\`${wrong}\` is not 2 to 6 digits, or starts like an international number`)
}

const word: Parse = (raw) => (/^[A-Za-z0-9_.@+-]+$/.test(raw) ? ok(raw) : bad('not a plain word'))

const TRANSPORT = 'pjsip_transport.conf'

/**
 * Asterisk binds one address family per transport: pjsip_transport.conf has [t_wan] with udp, tcp
 * and tls for IPv4, and [t_wan6] with udp6, tcp6 and tls6 for IPv6.
 */
export const FAMILIES = [
  { family: 4, template: 't_wan', tcp: 'tcp', tls: 'tls', any: '0.0.0.0' },
  { family: 6, template: 't_wan6', tcp: 'tcp6', tls: 'tls6', any: '[::]' },
] as const
const IPV6_SECTION: Record<string, string> = { t_wan: 't_wan6', tls: 'tls6' }
/** A write to an IPv4 section and to its IPv6 twin. */
const bothFamilies = (w: Write): Write[] => [w, { ...w, section: IPV6_SECTION[w.section]! }]
/** The same, each family taking only its own values: NAT is per family. */
const perFamily = (w: Write): Write[] => bothFamilies(w).map((x, i) => ({ ...x, family: i ? 6 : 4 }))
const mailcmd = (flag: string): Write => ({
  file: 'minivm.conf',
  section: 'general',
  key: 'mailcmd',
  as: 'mailcmd',
  flag,
})

export const SETTINGS: readonly Setting[] = [
  {
    name: 'SIP_DOMAIN',
    group: 'SIP',
    doc: 'SIP domain of the PBX',
    default: 'file value',
    allowed: 'a host name',
    parse: hostname,
    writes: bothFamilies({ file: TRANSPORT, section: 't_wan', key: 'domain' }),
  },
  {
    name: 'SIP_EXTERNAL_HOST',
    group: 'SIP',
    doc: 'Public host name or IP phones reach the PBX at (NAT); also the TLS certificate name',
    default: 'file value',
    allowed: 'a host name or IP address',
    parse: host,
    writes: [
      ...perFamily({ file: TRANSPORT, section: 't_wan', key: 'external_signaling_address' }),
      ...perFamily({ file: TRANSPORT, section: 't_wan', key: 'external_media_address' }),
    ],
  },
  {
    name: 'SIP_LOCAL_NET',
    group: 'SIP',
    doc: 'Networks that are local (not NATed), comma or space separated',
    default: 'file value',
    allowed: 'a list of address/prefix, e.g. 192.168.0.0/16,10.0.0.0/8',
    parse: cidrList,
    writes: perFamily({ file: TRANSPORT, section: 't_wan', key: 'local_net', as: 'list' }),
  },
  {
    name: 'SIP_PORT',
    group: 'SIP',
    doc: 'SIP port for UDP and TCP',
    default: '5060',
    allowed: 'a port number 1-65535',
    parse: port,
    writes: bothFamilies({ file: TRANSPORT, section: 't_wan', key: 'bind', as: 'port' }),
  },
  {
    name: 'SIP_TLS_PORT',
    group: 'SIP',
    doc: 'SIP port for TLS',
    default: '5061',
    allowed: 'a port number 1-65535',
    parse: port,
    writes: bothFamilies({ file: TRANSPORT, section: 'tls', key: 'bind', as: 'port' }),
  },
  {
    name: 'RTP_PORT_MIN',
    group: 'Media',
    doc: 'First UDP port for media (RTP)',
    default: '10000',
    allowed: 'a port number 1-65535, not above RTP_PORT_MAX',
    parse: port,
    writes: [{ file: 'rtp.conf', section: 'general', key: 'rtpstart' }],
  },
  {
    name: 'RTP_PORT_MAX',
    group: 'Media',
    doc: 'Last UDP port for media (RTP)',
    default: '10099',
    allowed: 'a port number 1-65535, not below RTP_PORT_MIN',
    parse: port,
    writes: [{ file: 'rtp.conf', section: 'general', key: 'rtpend' }],
  },
  {
    name: 'COUNTRY_CODE',
    aliases: ['CONTRY_CODE'],
    group: 'Dial plan',
    doc: 'Country calling code used to turn national numbers (0...) into +E.164',
    default: 'file value',
    allowed: '1 to 3 digits, without + or 00',
    parse: (raw) => (/^[1-9]\d{0,2}$/.test(raw) ? ok(raw) : bad('not a country code')),
    writes: [{ file: 'extensions_local.conf', section: 'globals', key: 'CONTRY_CODE' }],
  },
  {
    name: 'EMERGENCY_NUMBERS',
    group: 'Dial plan',
    doc: 'Emergency numbers every user may call, whatever their template, sent to the trunk exactly as dialled',
    default: 'file value (112,911,999,000,110)',
    allowed: 'numbers of 2 to 6 digits (not 00 and a digit 1-9), comma or space separated',
    parse: numberList,
    writes: [{ file: 'extensions_local.conf', section: 'globals', key: 'EMERGENCY_NUMBERS' }],
  },
  {
    name: 'EMERGENCY_TRUNK',
    group: 'Dial plan',
    doc: 'Trunk (its pjsip_endpoint.conf section name) for the emergency calls of users without a TRUNK_ENDPOINT',
    default: 'file value (none)',
    allowed: 'an endpoint name, e.g. itsp:mydoe',
    parse: (raw) => (/^[A-Za-z0-9_.:@+-]+$/.test(raw) ? ok(raw) : bad('not an endpoint name')),
    writes: [{ file: 'extensions_local.conf', section: 'globals', key: 'EMERGENCY_TRUNK' }],
  },
  {
    name: 'SMTP_HOST',
    group: 'Voicemail mail',
    doc: 'Mail server voicemail e-mails are sent through',
    default: 'file value',
    allowed: 'a host name or IP address',
    parse: host,
    writes: [mailcmd('-H')],
  },
  {
    name: 'SMTP_PORT',
    group: 'Voicemail mail',
    doc: 'Mail server port',
    default: 'by security: 587, 465 or 25',
    allowed: 'a port number 1-65535',
    parse: port,
    writes: [mailcmd('-H')],
  },
  {
    name: 'SMTP_SECURITY',
    group: 'Voicemail mail',
    doc: 'How the mail connection is secured',
    default: 'file value',
    allowed: 'starttls, tls or none',
    parse: oneOf('starttls', 'tls', 'none'),
    writes: [mailcmd('-P')],
  },
  {
    name: 'SMTP_USER',
    group: 'Voicemail mail',
    doc: 'Mail server user name',
    default: 'file value',
    allowed: 'one line of text',
    parse: text,
    writes: [mailcmd('-u')],
  },
  {
    name: 'SMTP_PASSWORD',
    group: 'Voicemail mail',
    secret: true,
    doc: 'Mail server password; minivm-send reads it from the environment, so it is never written to minivm.conf (a -p there is removed)',
    default: 'none',
    allowed: 'one line of text',
    parse: text,
    writes: [mailcmd('-p')],
    writesNote: 'nothing (removes mailcmd -p)',
  },
  {
    name: 'SMTP_FROM',
    group: 'Voicemail mail',
    doc: 'Sender address of voicemail e-mails',
    default: 'file value',
    allowed: 'an e-mail address',
    parse: email,
    writes: [mailcmd('-f'), { file: 'minivm.conf', section: 'general', key: 'emailaddress' }],
  },
  {
    name: 'MINIVM_SPOOL_DIR',
    group: 'Voicemail mail',
    doc: 'Where minivm-send keeps voicemail e-mails the server did not accept; run retries them every 5 minutes, except those refused for good, which go to its failed/ folder',
    default: '/var/spool/asterisk/minivm-outbox',
    value: '/var/spool/asterisk/minivm-outbox',
    allowed: 'an absolute path',
    parse: path,
  },
  {
    name: 'TLS_CERT_FILE',
    group: 'TLS',
    doc: 'Certificate (PEM, full chain) the TLS transport serves',
    default: '/etc/ssl/asterisk/cert.pem',
    value: '/etc/ssl/asterisk/cert.pem',
    allowed: 'an absolute path',
    parse: path,
    writes: bothFamilies({ file: TRANSPORT, section: 'tls', key: 'cert_file' }),
  },
  {
    name: 'TLS_KEY_FILE',
    group: 'TLS',
    doc: 'Private key (PEM) of the certificate',
    default: '/etc/ssl/asterisk/priv_key.pem',
    value: '/etc/ssl/asterisk/priv_key.pem',
    allowed: 'an absolute path',
    parse: path,
    writes: bothFamilies({ file: TRANSPORT, section: 'tls', key: 'priv_key_file' }),
  },
  {
    name: 'TLS_MODE',
    group: 'TLS',
    doc: "Where the TLS certificate comes from: made here (selfsigned), Let's Encrypt or another ACME CA (acme), or a Traefik acme.json (traefik)",
    default: 'acme if ACME_EMAIL or ACME_DOMAINS is set, traefik if ACME_FILE is, else selfsigned',
    allowed: 'selfsigned, acme or traefik',
    parse: oneOf('selfsigned', 'acme', 'traefik'),
  },
  {
    name: 'ACME_DIRECTORY',
    group: 'TLS',
    doc: "ACME CA directory; using acme mode means agreeing to the CA's terms of service",
    default: "production (Let's Encrypt)",
    allowed: 'production, staging or an https:// URL',
    parse: acmeDirectory,
  },
  {
    name: 'ACME_EMAIL',
    group: 'TLS',
    doc: 'Contact address for the ACME account (expiry warnings)',
    default: 'none',
    allowed: 'an e-mail address',
    parse: email,
  },
  {
    name: 'ACME_DOMAINS',
    group: 'TLS',
    doc: 'Names on the certificate (acme) or to look up (traefik), comma separated',
    default: 'SIP_EXTERNAL_HOST',
    allowed: 'host names, comma separated',
    parse: hostnameList,
  },
  {
    name: 'ACME_HTTP_PORT',
    group: 'TLS',
    doc: 'Port of the HTTP-01 challenge listener, open only while a challenge is pending; publish host port 80 to it',
    default: '80',
    value: '80',
    allowed: 'a port number 1-65535',
    parse: port,
  },
  {
    name: 'ACME_EAB_KID',
    group: 'TLS',
    doc: 'External account binding key id, for CAs that require one (ZeroSSL, ...)',
    default: 'none',
    allowed: 'one line of text',
    parse: text,
  },
  {
    name: 'ACME_EAB_HMAC_KEY',
    group: 'TLS',
    secret: true,
    doc: 'External account binding HMAC key (base64url)',
    default: 'none',
    allowed: 'base64url text',
    parse: (raw) => (/^[A-Za-z0-9_-]+=*$/.test(raw) ? ok(raw) : bad('not base64url')),
  },
  {
    name: 'ACME_CA_FILE',
    group: 'TLS',
    doc: "Extra CA certificate (PEM) trusted for the ACME server's HTTPS, for a private CA",
    default: 'system CAs',
    allowed: 'an absolute path',
    parse: path,
  },
  {
    name: 'ACME_FILE',
    group: 'TLS',
    doc: 'Traefik acme.json to take the certificate from (v1 and v2 layouts); watched for changes',
    default: 'none',
    allowed: 'an absolute path',
    parse: path,
  },
  {
    name: 'WEBSMS_PORT',
    group: 'WebSMS',
    doc: 'Port of the WebSMS listener for ITSP webhooks (incoming SMS over HTTP); put a TLS proxy in front. Unset: WebSMS off',
    default: 'none (off)',
    allowed: "a port number 1-65535, not extensions_local.conf's WEBSMS_API_PORT",
    parse: port,
  },
  {
    name: 'WEBSMS_SPOOL_DIR',
    group: 'WebSMS',
    doc: 'Where texts wait until delivered to phones or the ITSP; survives restarts',
    default: '/var/spool/asterisk/websms',
    value: '/var/spool/asterisk/websms',
    allowed: 'an absolute path',
    parse: path,
  },
  {
    name: 'BAN_MODE',
    group: 'Bans',
    doc: 'How banned addresses are kept out: nftables in the container (needs cap_add NET_ADMIN), Asterisk refusing them (a PJSIP ACL), auto (nftables when it works, else Asterisk), or off',
    default: 'auto',
    value: 'auto',
    allowed: 'auto, nft, asterisk or off',
    parse: oneOf('auto', 'nft', 'asterisk', 'off'),
  },
  {
    name: 'BAN_THRESHOLD',
    group: 'Bans',
    doc: 'Failed SIP attempts (unknown account, wrong password, refused by an ACL) from one address within BAN_WINDOW_SECONDS that ban it; a login that succeeds clears the count',
    default: '10',
    value: '10',
    allowed: 'a whole number 1-1000',
    parse: intRange(1, 1000),
  },
  {
    name: 'BAN_WINDOW_SECONDS',
    group: 'Bans',
    doc: 'How far back failed attempts count toward BAN_THRESHOLD',
    default: '600',
    value: '600',
    allowed: 'a whole number 1-86400',
    parse: intRange(1, 86400),
  },
  {
    name: 'BAN_TIME_SECONDS',
    group: 'Bans',
    doc: 'How long a first ban lasts; each repeat lasts BAN_REPEAT_FACTOR times the one before',
    default: '1200',
    value: '1200',
    allowed: 'a whole number 1-31536000',
    parse: intRange(1, 31536000),
  },
  {
    name: 'BAN_REPEAT_FACTOR',
    group: 'Bans',
    doc: 'How much longer each ban of a repeat offender is than the one before; an address counts as a repeat offender until BAN_MAX_SECONDS after its last ban ended',
    default: '4',
    value: '4',
    allowed: 'a whole number 1-100',
    parse: intRange(1, 100),
  },
  {
    name: 'BAN_MAX_SECONDS',
    group: 'Bans',
    doc: 'The longest a ban lasts, however often the address came back',
    default: '604800 (a week)',
    value: '604800',
    allowed: 'a whole number 1-31536000',
    parse: intRange(1, 31536000),
  },
  {
    name: 'BAN_ALLOW',
    group: 'Bans',
    doc: 'Addresses never banned, besides loopback, the local networks (SIP_LOCAL_NET, local_net) and the trunks (remote_hosts, identify match)',
    default: 'none',
    allowed: 'a list of address/prefix, e.g. 203.0.113.7,2001:db8::/48',
    parse: cidrList,
  },
  {
    name: 'BAN_FILE',
    group: 'Bans',
    doc: 'Where active bans are kept across restarts (on the volume); `privatedial bans` reads it',
    default: '/var/lib/asterisk/db/bans.json',
    value: '/var/lib/asterisk/db/bans.json',
    allowed: 'an absolute path',
    parse: path,
  },
  {
    name: 'TEXT_STORE_DIR',
    group: 'Texts',
    doc: 'Where texts for users whose phones are offline wait until a phone registers; survives restarts',
    default: '/var/spool/asterisk/texts',
    value: '/var/spool/asterisk/texts',
    allowed: 'an absolute path',
    parse: path,
  },
  {
    name: 'TEXT_EXPIRY',
    group: 'Texts',
    doc: 'How long a text waits for a phone of its user; then the sender (a local user) gets a text saying it was not delivered',
    default: '7d (604800 s)',
    value: '604800',
    allowed: 'seconds, or a number with s, m, h or d (e.g. 7d)',
    parse: duration,
  },
  {
    name: 'TEXT_FANOUT',
    group: 'Texts',
    doc: "After a user's first phone got a text, how long other phones of the user that come online still get it",
    default: '1h (3600 s)',
    value: '3600',
    allowed: 'seconds, or a number with s, m, h or d',
    parse: duration,
  },
  {
    name: 'TEXT_MAX_PER_USER',
    group: 'Texts',
    doc: 'Most texts kept for one user whose phones are offline; the sender of one more is told it was not taken',
    default: '500',
    value: '500',
    allowed: 'a whole number 1-100000',
    parse: intRange(1, 100_000),
  },
  {
    name: 'TEXT_MAX_BYTES_PER_USER',
    group: 'Texts',
    doc: 'Most bytes of text kept for one user whose phones are offline; likewise',
    default: '1048576',
    value: '1048576',
    allowed: 'a whole number of bytes 1024-1073741824',
    parse: intRange(1024, 1_073_741_824),
  },
  {
    name: 'AMI_PORT',
    group: 'Texts',
    doc: "Port of Asterisk's manager interface on 127.0.0.1 (never another address), which tells the texts service when phones register; manager.conf is written at every start with a new secret",
    default: '5038',
    value: '5038',
    allowed: 'a port number 1-65535',
    parse: port,
    writesNote: 'manager.conf, the whole file, at every start (the texts service)',
  },
  {
    name: 'ASTERISK_CONF_DIR',
    group: 'Runtime',
    doc: 'Directory holding the Asterisk configuration',
    default: '/etc/asterisk',
    value: '/etc/asterisk',
    allowed: 'an absolute path',
    parse: path,
  },
  {
    name: 'ASTERISK_BIN',
    group: 'Runtime',
    doc: 'Asterisk executable',
    default: 'asterisk (on PATH)',
    value: 'asterisk',
    allowed: 'a command name or absolute path',
    parse: (raw) => (/^[^\x00-\x1f\s]+$/.test(raw) ? ok(raw) : bad('not a command')),
  },
  {
    name: 'LOG_LEVEL',
    group: 'Runtime',
    doc: 'Least severe log level printed',
    default: 'info',
    value: 'info',
    allowed: 'debug, info, warn or error',
    parse: oneOf('debug', 'info', 'warn', 'error'),
  },
  {
    name: 'TZ',
    group: 'Runtime',
    doc: 'Time zone for logs, voicemail time stamps and e-mails',
    default: 'UTC',
    allowed: 'a zone name like Europe/Stockholm',
    parse: timezone,
  },
  {
    name: 'STOP_GRACE_SECONDS',
    group: 'Runtime',
    doc: 'On stop, how long calls in progress may go on before Asterisk is stopped hard',
    default: '8',
    value: '8',
    allowed: 'a whole number 0-3600',
    parse: intRange(0, 3600),
  },
  {
    name: 'WATCH_FILES',
    group: 'Runtime',
    doc: 'More config files to watch and reload on change, besides pjsip_endpoint.conf',
    default: 'none',
    allowed: 'comma separated absolute paths',
    parse: pathList,
  },
  {
    name: 'LOG_FILE_MAX_MB',
    group: 'Runtime',
    doc: "Size at which Asterisk's log files on the volume (logger.conf's file channels, e.g. security) are rotated",
    default: '10',
    value: '10',
    allowed: 'a whole number 1-100000',
    parse: intRange(1, 100000),
  },
  {
    name: 'LOG_FILE_KEEP',
    group: 'Runtime',
    doc: 'Rotated log files kept beside each one; older ones are removed',
    default: '3',
    value: '3',
    allowed: 'a whole number 0-100',
    parse: intRange(0, 100),
  },
  {
    name: 'ASTERISK_USER',
    group: 'Runtime',
    doc: 'User Asterisk runs as when started as root',
    default: 'asterisk',
    value: 'asterisk',
    allowed: 'a user name',
    parse: word,
  },
]

export interface Value {
  value: string
  /** Where it came from, for the log: the variable's name, NAME_FILE, or an alias. */
  source: string
  secret: boolean
}

export type Settings = ReadonlyMap<string, Value>

export const MASK = '********'

export function display(name: string, settings: Settings): string {
  const v = settings.get(name)
  return v === undefined ? '' : v.secret ? MASK : v.value
}

export interface ReadEnvDeps {
  readFile: (path: string) => string
}

/**
 * Validate the environment against the table. Returns every problem at once, one line each,
 * naming the variable, the value received (masked if secret) and what is allowed.
 */
export function readSettings(env: NodeJS.ProcessEnv, deps: ReadEnvDeps): { settings: Settings; problems: string[] } {
  const settings = new Map<string, Value>()
  const problems: string[] = []
  for (const s of SETTINGS) {
    const names = [s.name, ...(s.aliases ?? [])]
    const present = names.filter((n) => env[n] !== undefined && env[n] !== '')
    const fileVar = `${s.name}_FILE`
    const fromFile = s.secret && env[fileVar] ? env[fileVar] : undefined
    if (present.length > 1) {
      const vals = present.map((n) => `${n}=\`${s.secret ? MASK : env[n]}\``).join(' and ')
      if (new Set(present.map((n) => env[n])).size > 1) {
        problems.push(`${present.join(' and ')} are both set and differ (${vals}); set only ${s.name}`)
        continue
      }
    }
    if (present.length && fromFile !== undefined) {
      problems.push(`${present[0]} and ${fileVar} are both set; set only one`)
      continue
    }
    let raw: string | undefined
    let source: string
    if (fromFile !== undefined) {
      source = fileVar
      try {
        // Secret files end with the newline editors add; it is not part of the secret.
        raw = deps.readFile(fromFile).replace(/\r?\n$/, '')
      } catch (err) {
        problems.push(
          `${fileVar} names \`${fromFile}\`, which can't be read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
        )
        continue
      }
    } else if (present.length) {
      source = present[0]!
      raw = env[source]!
    } else continue
    const shown = s.secret ? MASK : raw
    const r = s.parse(raw)
    if ('error' in r) {
      problems.push(mustBe(source, s.allowed, shown, { why: r.error }))
      continue
    }
    settings.set(s.name, { value: r.ok, source, secret: !!s.secret })
  }
  return { settings, problems }
}

/** The variable's value, or the table's default for it; undefined where the file's value applies. */
export function valueOf(settings: Settings, name: string): string | undefined {
  return settings.get(name)?.value ?? settingByName(name).value
}

export function settingByName(name: string): Setting {
  const s = SETTINGS.find((x) => x.name === name)
  if (!s) throw new Error(`internal: no setting named ${name}`)
  return s
}

/** The README's env table, from the catalogue. */
export function envTable(): string {
  const rows = SETTINGS.map((s) => {
    const names = [s.name, ...(s.aliases ?? []).map((a) => `${a} (old name)`)]
    if (s.secret) names.push(`${s.name}_FILE`)
    const cell = (x: string) => x.replace(/\|/g, '\\|')
    return `| ${names.map((n) => `\`${n}\``).join(', ')} | ${cell(s.doc)} | ${cell(s.default)} | ${cell(s.allowed)} | ${cell(s.writesNote ?? (s.writes?.map(describeWrite).join(', ') || 'runtime only'))} |`
  })
  return ['| variable | meaning | default | allowed | written to |', '| --- | --- | --- | --- | --- |', ...rows].join(
    '\n',
  )
}
