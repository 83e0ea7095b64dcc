// websms.conf: which ITSP HTTP SMS APIs WebSMS talks to. Pure: text in, a validated config (or every
// problem, as file:line) out. One section per ITSP, named as the users' WEBSMS_INDEX.
//
// The presets were checked against the ITSPs' public documentation:
// - 46elks, sending: https://46elks.se/docs/overview (base https://api.46elks.com/a1/, Basic auth,
//   form-encoded), the guides' POST https://api.46elks.com/a1/sms with fields to, from, message
//   (to in E.164 with +). Receiving: https://46elks.se/docs/receive-sms: a form-encoded POST to the
//   number's sms_url with id, from, to, message, direction, created; the answer must be 200-204, and
//   a body in it is sent back to the sender as a reply, so the acknowledgement is empty. 46elks
//   signs nothing: authenticate with a secret path or basic auth in the sms_url.
// - Telnyx, sending: https://developers.telnyx.com/docs/messaging (POST
//   https://api.telnyx.com/v2/messages, JSON from, to, text, Authorization: Bearer <API key>;
//   messaging_profile_id for alphanumeric senders). Receiving:
//   https://developers.telnyx.com/api-reference/callbacks/inbound-message (JSON data.event_type
//   message.received, data.payload.from.phone_number, data.payload.to[0].phone_number,
//   data.payload.text; message.sent and message.finalized arrive at the same URL) and
//   https://developers.telnyx.com/docs/messaging/messages/receiving-webhooks (2xx within 2 s).
//   Signature: headers telnyx-signature-ed25519 (base64) and telnyx-timestamp (Unix seconds) over
//   `${timestamp}|${raw body}`, with the account's base64 Ed25519 public key (Telnyx SDK webhook
//   helpers: developers.telnyx.com/docs/development/sdk/node/webhooks).
import { splitHostPort } from '../base/host-port.ts'
import { createPublicKey, type KeyObject } from 'node:crypto'
import { BlockList, isIP } from 'node:net'
import { parseConf, resolveValues, sections, type ConfDoc, type Section } from '../config/conf.ts'
import { ConfigError, ConfSyntaxError } from '../base/errors.ts'
import { settingByName } from '../config/settings.ts'

export const WEBSMS_CONF = 'websms.conf'

export type Preset = '46elks' | 'telnyx' | 'generic'
export const PRESETS: readonly Preset[] = ['46elks', 'telnyx', 'generic']

export type OutboundAuth =
  | { kind: 'none' }
  | { kind: 'basic'; username: string; password: string }
  | { kind: 'bearer'; token: string }
  | { kind: 'header'; name: string; token: string }

export type InboundAuth =
  | { kind: 'none' }
  | { kind: 'path'; secret: string }
  | { kind: 'header'; name: string; secret: string }
  | { kind: 'basic'; username: string; password: string }
  | { kind: 'ed25519'; publicKey: KeyObject }

export interface Fields {
  to: string
  from: string
  body: string
}

export interface Outbound {
  url: URL
  method: 'POST' | 'PUT'
  encoding: 'form' | 'json'
  auth: OutboundAuth
  fields: Fields
  /** Sent with every request, e.g. Telnyx's messaging_profile_id. */
  static: Array<[string, string]>
  /** `e164`: +46701234567; `digits`: 46701234567. */
  numberFormat: 'e164' | 'digits'
}

export interface Inbound {
  auth: InboundAuth
  /** Field names (form) or dotted paths (JSON, numbers index arrays). */
  fields: Fields
  /** Webhooks whose field at the path has another value are acknowledged and ignored. */
  match: Array<[string, string]>
  /** Source networks allowed to post; undefined: any. */
  allow?: BlockList
  /** Peers whose X-Forwarded-For is believed. */
  trustedProxies?: BlockList
}

export interface Itsp {
  index: string
  preset: Preset
  outbound: Outbound
  /** Undefined: this ITSP's webhooks are not taken (inbound_auth = off). */
  inbound?: Inbound
}

export interface WebsmsConfig {
  itsps: ReadonlyMap<string, Itsp>
}

interface KeySpec {
  /** May be given more than once; list values may also be comma or space separated. */
  repeat?: boolean
  /** Never echoed in a problem. */
  secret?: boolean
}

const KEYS: Record<string, KeySpec> = {
  preset: {},
  url: {},
  method: {},
  encoding: {},
  auth: {},
  username: {},
  password: { secret: true },
  token: { secret: true },
  auth_header: {},
  to_field: {},
  from_field: {},
  body_field: {},
  static: { repeat: true },
  number_format: {},
  inbound_auth: {},
  inbound_secret: { secret: true },
  inbound_header: {},
  inbound_username: {},
  inbound_password: { secret: true },
  inbound_public_key: {},
  inbound_to: {},
  inbound_from: {},
  inbound_body: {},
  inbound_match: { repeat: true },
  allow: { repeat: true },
  trusted_proxies: { repeat: true },
}

type Defaults = Partial<Record<keyof typeof KEYS, string[]>>

const COMMON: Defaults = {
  method: ['POST'],
  number_format: ['e164'],
  inbound_auth: ['off'],
  inbound_header: ['X-Webhook-Secret'],
}

const PRESET_DEFAULTS: Record<Preset, Defaults> = {
  '46elks': {
    url: ['https://api.46elks.com/a1/sms'],
    encoding: ['form'],
    auth: ['basic'],
    to_field: ['to'],
    from_field: ['from'],
    body_field: ['message'],
    inbound_to: ['to'],
    inbound_from: ['from'],
    inbound_body: ['message'],
  },
  telnyx: {
    url: ['https://api.telnyx.com/v2/messages'],
    encoding: ['json'],
    auth: ['bearer'],
    to_field: ['to'],
    from_field: ['from'],
    body_field: ['text'],
    inbound_to: ['data.payload.to.0.phone_number'],
    inbound_from: ['data.payload.from.phone_number'],
    inbound_body: ['data.payload.text'],
    inbound_match: ['data.event_type=message.received'],
  },
  generic: { encoding: ['form'], auth: ['none'] },
}

/** Names appear in webhook URLs and in the users' WEBSMS_INDEX. */
const INDEX = /^[A-Za-z0-9_.-]{1,40}$/
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/
const PATH_SECRET = /^[A-Za-z0-9._~-]{16,}$/
const MIN_SECRET = 16

export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/^\[|\]$/g, '').toLowerCase()
  return h === 'localhost' || h === '::1' || (isIP(h) === 4 && h.startsWith('127.'))
}

/** Addresses of a list in SIP_LOCAL_NET's syntax (its parser, so both read CIDR the same way). */
function blockList(values: string[]): BlockList | string {
  const r = settingByName('SIP_LOCAL_NET').parse(values.join(','))
  if ('error' in r) return r.error
  const list = new BlockList()
  for (const item of r.ok.split(',')) {
    const [addr = '', prefix] = item.split('/')
    const family = isIP(addr) === 6 ? 'ipv6' : 'ipv4'
    if (prefix === undefined) list.addAddress(addr, family)
    else list.addSubnet(addr, Number(prefix), family)
  }
  return list
}

function ed25519Key(base64: string): KeyObject | undefined {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(base64)) return undefined
  const raw = Buffer.from(base64, 'base64')
  if (raw.length !== 32) return undefined
  try {
    return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: raw.toString('base64url') }, format: 'jwk' })
  } catch {
    return undefined
  }
}

/** One section read into values by key, each with the line it came from; defaults have no line. */
interface Read {
  get(key: string): string | undefined
  list(key: string): string[]
  line(key: string): number
  has(key: string): boolean
}

function readSection(section: Section, file: string, problems: string[]): { read: Read; preset: Preset } | undefined {
  const at = (line: number) => `${file}:${line}: [${section.name}]`
  const own = new Map<string, { values: string[]; line: number }>()
  for (const e of section.entries) {
    const spec = Object.hasOwn(KEYS, e.key) ? KEYS[e.key] : undefined
    if (!spec) {
      problems.push(`${at(e.line)} unknown key \`${e.key}\`; expected one of ${Object.keys(KEYS).join(', ')}`)
      continue
    }
    if (e.op !== '=') problems.push(`${at(e.line)} \`${e.key} =>\`: expected \`${e.key} = value\``)
    const prev = own.get(e.key)
    if (prev && !spec.repeat) {
      problems.push(`${at(e.line)} ${e.key} is set again (first on line ${prev.line}); set it once`)
      continue
    }
    const values =
      spec.repeat && e.key !== 'static' && e.key !== 'inbound_match'
        ? e.value.split(/[\s,]+/).filter(Boolean)
        : [e.value]
    if (prev) prev.values.push(...values)
    else own.set(e.key, { values, line: e.line })
  }
  const presetName = own.get('preset')?.values[0] ?? 'generic'
  if (!PRESETS.includes(presetName as Preset)) {
    problems.push(
      `${at(own.get('preset')?.line ?? section.line)} preset must be one of ${PRESETS.join(', ')}, got \`${presetName}\``,
    )
    return undefined
  }
  const preset = presetName as Preset
  const defaults: Defaults = { ...COMMON, ...PRESET_DEFAULTS[preset] }
  const list = (key: string) => own.get(key)?.values ?? defaults[key] ?? []
  const read: Read = {
    list,
    get: (key) => list(key)[0],
    line: (key) => own.get(key)?.line ?? section.line,
    has: (key) => own.has(key),
  }
  return { read, preset }
}

function parseItsp(section: Section, file: string, problems: string[]): Itsp | undefined {
  const before = problems.length
  const r = readSection(section, file, problems)
  if (!r) return undefined
  const { read, preset } = r
  const index = section.name
  const at = (key: string) => `${file}:${read.line(key)}: [${index}]`
  const shown = (key: string, v: string) => (Object.hasOwn(KEYS, key) && KEYS[key]!.secret ? '********' : v)
  const bad = (key: string, expected: string) =>
    problems.push(`${at(key)} ${key} must be ${expected}, got \`${shown(key, read.get(key) ?? '')}\``)
  const need = (key: string, why: string): string => {
    const v = read.get(key)
    if (v) return v
    problems.push(`${at(key)} needs ${key} (${why})`)
    return ''
  }
  const oneOf = <T extends string>(key: string, allowed: readonly T[]): T => {
    const v = (read.get(key) ?? '').toLowerCase()
    const found = allowed.find((a) => a.toLowerCase() === v)
    if (found) return found
    bad(key, `one of ${allowed.join(', ')}`)
    return allowed[0]!
  }
  const field = (key: string, why: string) => {
    const v = need(key, why)
    if (v && /[\s\x00-\x1f\x7f]/.test(v)) bad(key, 'a field name without spaces')
    return v
  }
  const pairs = (key: string): Array<[string, string]> =>
    read.list(key).flatMap((v) => {
      const eq = v.indexOf('=')
      if (eq > 0) return [[v.slice(0, eq).trim(), v.slice(eq + 1).trim()] as [string, string]]
      problems.push(`${at(key)} ${key} must be name=value, got \`${v}\``)
      return []
    })

  // Outbound: where users' texts to other numbers go.
  let url = new URL('https://invalid.invalid/')
  const rawUrl = need('url', 'the ITSP API address texts are posted to')
  if (rawUrl) {
    if (!URL.canParse(rawUrl)) bad('url', 'an https:// URL')
    else {
      const u = new URL(rawUrl)
      if (u.username || u.password)
        problems.push(`${at('url')} url must not carry credentials; set username and password (or token) instead`)
      else if (u.protocol === 'https:' || (u.protocol === 'http:' && isLoopbackHost(u.hostname))) url = u
      else bad('url', 'an https:// URL (http:// only to this host)')
    }
  }
  const method = oneOf('method', ['POST', 'PUT'] as const)
  const encoding = oneOf('encoding', ['form', 'json'] as const)
  const authKind = oneOf('auth', ['none', 'basic', 'bearer', 'header'] as const)
  let auth: OutboundAuth = { kind: 'none' }
  if (authKind === 'basic')
    auth = { kind: 'basic', username: need('username', 'auth = basic'), password: need('password', 'auth = basic') }
  else if (authKind === 'bearer') auth = { kind: 'bearer', token: need('token', 'auth = bearer') }
  else if (authKind === 'header') {
    const name = need('auth_header', 'auth = header: the header the token is sent in')
    if (name && !HEADER_NAME.test(name)) bad('auth_header', 'an HTTP header name')
    auth = { kind: 'header', name, token: need('token', 'auth = header') }
  }
  const outbound: Outbound = {
    url,
    method,
    encoding,
    auth,
    fields: {
      to: field('to_field', 'the request field for the number texted'),
      from: field('from_field', "the request field for the sender's number"),
      body: field('body_field', 'the request field for the text'),
    },
    static: pairs('static'),
    numberFormat: oneOf('number_format', ['e164', 'digits'] as const),
  }

  // Inbound: the ITSP's webhooks for texts to users' numbers.
  let inbound: Inbound | undefined
  const inboundKind = oneOf('inbound_auth', ['off', 'none', 'path', 'header', 'basic', 'ed25519'] as const)
  const inboundOnly = [
    'inbound_secret',
    'inbound_username',
    'inbound_password',
    'inbound_public_key',
    'allow',
    'trusted_proxies',
  ]
  if (inboundKind === 'off') {
    for (const key of inboundOnly)
      if (read.has(key)) problems.push(`${at(key)} ${key} has no effect while inbound_auth is off; set inbound_auth`)
  } else {
    let inAuth: InboundAuth = { kind: 'none' }
    const secret = (key: string, why: string, pattern?: RegExp) => {
      const v = need(key, why)
      if (v && (v.length < MIN_SECRET || (pattern && !pattern.test(v)))) {
        problems.push(
          `${at(key)} ${key} must be at least ${MIN_SECRET} characters${pattern ? ' of A-Z a-z 0-9 . _ ~ -' : ''} (not shown)`,
        )
      }
      return v
    }
    if (inboundKind === 'path')
      inAuth = {
        kind: 'path',
        secret: secret('inbound_secret', 'inbound_auth = path: the last part of the webhook URL', PATH_SECRET),
      }
    else if (inboundKind === 'header') {
      const name = need('inbound_header', 'inbound_auth = header')
      if (name && !HEADER_NAME.test(name)) bad('inbound_header', 'an HTTP header name')
      inAuth = {
        kind: 'header',
        name: name.toLowerCase(),
        secret: secret('inbound_secret', 'inbound_auth = header: the value of the header'),
      }
    } else if (inboundKind === 'basic') {
      inAuth = {
        kind: 'basic',
        username: need('inbound_username', 'inbound_auth = basic'),
        password: secret('inbound_password', 'inbound_auth = basic'),
      }
    } else if (inboundKind === 'ed25519') {
      const v = need('inbound_public_key', "inbound_auth = ed25519: the ITSP's public key, base64")
      const key = v ? ed25519Key(v) : undefined
      if (v && !key) bad('inbound_public_key', 'a base64 Ed25519 public key (32 bytes)')
      if (key) inAuth = { kind: 'ed25519', publicKey: key }
    }
    const networks = (key: string): BlockList | undefined => {
      if (!read.has(key)) return undefined
      const list = blockList(read.list(key))
      if (typeof list !== 'string') return list
      problems.push(`${at(key)} ${key} must be addresses or address/prefix networks, comma separated (${list})`)
      return undefined
    }
    const allow = networks('allow')
    if (inboundKind === 'none' && !read.has('allow')) {
      problems.push(
        `${at('inbound_auth')} inbound_auth = none takes webhooks from anyone; set allow to the ITSP's networks, or choose path, header, basic or ed25519`,
      )
    }
    inbound = {
      auth: inAuth,
      fields: {
        to: field('inbound_to', 'the webhook field with the number texted'),
        from: field('inbound_from', "the webhook field with the sender's number"),
        body: field('inbound_body', 'the webhook field with the text'),
      },
      match: pairs('inbound_match'),
      allow,
      trustedProxies: networks('trusted_proxies'),
    }
  }
  if (problems.length > before) return undefined
  return { index, preset, outbound, inbound }
}

/** Reads websms.conf's text; throws ConfigError listing every problem, each as file:line. */
export function parseWebsmsConf(text: string, file = WEBSMS_CONF): WebsmsConfig {
  let doc
  try {
    doc = parseConf(text, file)
  } catch (err) {
    if (err instanceof ConfSyntaxError) throw new ConfigError([err.message], { cause: err })
    throw err
  }
  const problems: string[] = []
  const itsps = new Map<string, Itsp>()
  const seen = new Map<string, number>()
  for (const s of sections(doc)) {
    const at = `${file}:${s.line}: [${s.name}]`
    if (!INDEX.test(s.name)) {
      problems.push(`${at} section names are WEBSMS_INDEX values: 1-40 of A-Z a-z 0-9 _ . -, got \`${s.name}\``)
      continue
    }
    if (s.isTemplate || s.extend || s.templates.length) {
      problems.push(`${at} templates and (+) are not supported in ${file}; write each ITSP out in full`)
      continue
    }
    const first = seen.get(s.name)
    if (first !== undefined) {
      problems.push(`${at} is defined again (first on line ${first}); give each ITSP one section`)
      continue
    }
    seen.set(s.name, s.line)
    const itsp = parseItsp(s, file, problems)
    if (itsp) itsps.set(itsp.index, itsp)
  }
  if (problems.length) throw new ConfigError(problems)
  return { itsps }
}

export const DEFAULT_API_PORT = 58080

/** What WebSMS takes from the rest of the suite, so each setting has one source. */
export interface Wiring {
  /** The loopback API port the dial plan's CURL posts to. */
  apiPort: number
  /** Where Asterisk's UDP transport listens. */
  sip: { host: string; port: number }
  /** For national numbers, as the dial plan reads it. */
  countryCode?: string
}

function portOf(raw: string, what: string): number {
  if (/^\d{1,5}$/.test(raw) && Number(raw) >= 1 && Number(raw) <= 65535) return Number(raw)
  throw new ConfigError([`${what} must be a port number 1-65535, got \`${raw}\``])
}

/**
 * From the dial plan's [globals] (extensions.conf with its includes): WEBSMS_API_PORT and
 * CONTRY_CODE. From pjsip.conf with its includes: [udp]'s bind, through its templates.
 */
export function websmsWiring(dialplan: ConfDoc[], pjsip: ConfDoc[]): Wiring {
  const global = (key: string) => resolveValues(dialplan, 'globals', key).at(-1)?.trim() || undefined
  const api = global('WEBSMS_API_PORT')
  const apiPort = api === undefined ? DEFAULT_API_PORT : portOf(api, 'extensions_local.conf [globals] WEBSMS_API_PORT')
  const bind = resolveValues(pjsip, 'udp', 'bind').at(-1)?.trim() || '0.0.0.0:5060'
  const hp = splitHostPort(bind)
  if (!hp?.host) throw new ConfigError([`pjsip_transport.conf [udp] bind must be address:port, got \`${bind}\``])
  const host = hp.host
  const port = hp.port === undefined ? 5060 : portOf(hp.port, 'pjsip_transport.conf [udp] bind port')
  // The websms endpoint is identified by 127.0.0.1, so texts go over loopback unless Asterisk
  // listens on one IPv4 address only.
  const sipHost = isIP(host) === 4 && host !== '0.0.0.0' ? host : '127.0.0.1'
  const cc = global('CONTRY_CODE')
  return { apiPort, sip: { host: sipHost, port }, countryCode: cc && /^\d{1,3}$/.test(cc) ? cc : undefined }
}
