// What crosses HTTP to and from an ITSP: the outbound request, the fields of a webhook, its
// authentication, and whose address it came from. Pure; websms.ts does the I/O.
import { createHash, timingSafeEqual, verify } from 'node:crypto'
import type { IncomingHttpHeaders } from 'node:http'
import { isIP, type BlockList } from 'node:net'
import type { Inbound, InboundAuth, Outbound } from './config.ts'

/** Telnyx rejects a webhook signed longer ago than this; so do we, against replays. */
export const SIGNATURE_TOLERANCE_S = 300

/**
 * A text as phones and ITSPs can carry it: well-formed Unicode (no lone surrogates), no control
 * characters but tab and line breaks. Emoji, newlines and every script stay.
 */
export function sanitizeText(text: string): string {
  return text.toWellFormed().replace(/[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/g, '')
}

/**
 * A phone number as the dial plan wants it: +E.164. `00` and a national `0` (with the country
 * code) are turned into it; 3-6 digits are a short code and stay as they are. Undefined: not a
 * number.
 */
export function normalizeNumber(raw: string, countryCode?: string): string | undefined {
  const s = raw.trim().replace(/[ \u00a0().-]/g, '')
  if (/^\+[1-9]\d{5,14}$/.test(s)) return s
  if (/^00[1-9]\d{5,14}$/.test(s)) return `+${s.slice(2)}`
  if (/^0[1-9]\d{4,13}$/.test(s)) return countryCode ? `+${countryCode}${s.slice(1)}` : s
  if (/^[1-9]\d{6,14}$/.test(s)) return `+${s}`
  if (/^\d{3,6}$/.test(s)) return s
  return undefined
}

/** A sender: a number, or an alphanumeric sender id (a bank, a service) as SMS allows. */
export function normalizeSender(raw: string, countryCode?: string): string | undefined {
  const id = raw.trim()
  return normalizeNumber(raw, countryCode) ?? (/^(?=.*[A-Za-z])[A-Za-z0-9 ._-]{1,20}$/.test(id) ? id : undefined)
}

export const EMPTY_TEXT = '(a message without text)'

export interface Text {
  to: string
  from: string
  body: string
}

export interface HttpRequest {
  url: string
  method: string
  headers: Record<string, string>
  body: string
}

type Json = { [key: string]: Json } | string

/** `a.b` in JSON bodies nests; null prototypes, so no field name reaches Object.prototype. */
function setPath(obj: Record<string, Json>, path: string, value: string): void {
  const parts = path.split('.')
  let at = obj
  for (const p of parts.slice(0, -1)) {
    const next = at[p]
    at = typeof next === 'object' ? next : (at[p] = Object.create(null) as Record<string, Json>)
  }
  at[parts.at(-1)!] = value
}

export function outboundRequest(out: Outbound, text: Text): HttpRequest {
  const num = (n: string) => (out.numberFormat === 'digits' ? n.replace(/^\+/, '') : n)
  const fields: Array<[string, string]> = [
    ...out.static,
    [out.fields.to, num(text.to)],
    [out.fields.from, num(text.from)],
    [out.fields.body, text.body],
  ]
  const headers: Record<string, string> = { 'user-agent': 'PrivateDial-WebSMS', accept: 'application/json' }
  const a = out.auth
  if (a.kind === 'basic')
    headers.authorization = `Basic ${Buffer.from(`${a.username}:${a.password}`).toString('base64')}`
  else if (a.kind === 'bearer') headers.authorization = `Bearer ${a.token}`
  else if (a.kind === 'header') headers[a.name.toLowerCase()] = a.token
  let body: string
  if (out.encoding === 'json') {
    const obj = Object.create(null) as Record<string, Json>
    for (const [k, v] of fields) setPath(obj, k, v)
    body = JSON.stringify(obj)
    headers['content-type'] = 'application/json'
  } else {
    body = new URLSearchParams(fields).toString()
    headers['content-type'] = 'application/x-www-form-urlencoded'
  }
  return { url: out.url.href, method: out.method, headers, body }
}

const sha256 = (s: string) => createHash('sha256').update(s).digest()
/** The configured side's digests, computed once per secret. */
const expectedDigests = new Map<string, Buffer>()

/** Compared as hashes, so neither the length nor the content leaks through timing. */
function same(received: string, expected: string): boolean {
  let digest = expectedDigests.get(expected)
  if (!digest) expectedDigests.set(expected, (digest = sha256(expected)))
  return timingSafeEqual(sha256(received), digest)
}

const header = (headers: IncomingHttpHeaders, name: string) => {
  const v = headers[name]
  return Array.isArray(v) ? v[0] : v
}

export interface Refusal {
  status: number
  reason: string
}

/**
 * Credentials that don't need the body: the path's secret, a header, basic auth. A signature is
 * checked once the body is read (checkSignature).
 */
export function checkCredentials(
  auth: InboundAuth,
  headers: IncomingHttpHeaders,
  pathSecret: string | undefined,
): Refusal | undefined {
  if (auth.kind !== 'path' && pathSecret !== undefined) return { status: 404, reason: 'no such webhook' }
  switch (auth.kind) {
    case 'path':
      return pathSecret !== undefined && same(pathSecret, auth.secret)
        ? undefined
        : { status: 404, reason: 'wrong or missing path secret' }
    case 'header': {
      const v = header(headers, auth.name)
      return v !== undefined && same(v, auth.secret)
        ? undefined
        : { status: 401, reason: `wrong or missing ${auth.name} header` }
    }
    case 'basic': {
      const m = /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(header(headers, 'authorization') ?? '')
      const pair = m ? Buffer.from(m[1]!, 'base64').toString('utf8') : ''
      const colon = pair.indexOf(':')
      const ok = colon >= 0 && same(pair.slice(0, colon), auth.username) && same(pair.slice(colon + 1), auth.password)
      return ok ? undefined : { status: 401, reason: 'wrong or missing basic auth' }
    }
    default:
      return undefined
  }
}

/** Telnyx's scheme: Ed25519 over `${telnyx-timestamp}|${raw body}`, recent timestamps only. */
export function checkSignature(
  auth: InboundAuth,
  headers: IncomingHttpHeaders,
  raw: Buffer,
  nowMs: number,
): Refusal | undefined {
  if (auth.kind !== 'ed25519') return undefined
  const sig = header(headers, 'telnyx-signature-ed25519')
  const ts = header(headers, 'telnyx-timestamp')
  if (!sig || !ts || !/^\d{1,12}$/.test(ts))
    return { status: 401, reason: 'missing telnyx-signature-ed25519 or telnyx-timestamp' }
  if (Math.abs(nowMs / 1000 - Number(ts)) > SIGNATURE_TOLERANCE_S)
    return { status: 401, reason: `signature timestamp ${ts} is more than ${SIGNATURE_TOLERANCE_S} s off` }
  let ok = false
  try {
    ok = verify(null, Buffer.concat([Buffer.from(`${ts}|`), raw]), auth.publicKey, Buffer.from(sig, 'base64'))
  } catch {
    ok = false
  }
  return ok ? undefined : { status: 401, reason: 'bad signature' }
}

const unmap = (a: string) => (a.startsWith('::ffff:') && isIP(a.slice(7)) === 4 ? a.slice(7) : a)

export function inList(list: BlockList, addr: string): boolean {
  return list.check(addr, isIP(addr) === 6 ? 'ipv6' : 'ipv4')
}

/**
 * The client's address: the peer's, unless the peer is a trusted proxy; then the nearest
 * X-Forwarded-For hop that is not one. Undefined: a forwarded hop that is not an address.
 */
export function clientAddress(
  peer: string,
  forwarded: string | string[] | undefined,
  trusted?: BlockList,
): string | undefined {
  let addr = unmap(peer)
  if (!trusted || forwarded === undefined || !inList(trusted, addr)) return addr
  const hops = [forwarded]
    .flat()
    .join(',')
    .split(',')
    .map((h) => h.trim())
    .filter(Boolean)
  for (const raw of hops.reverse()) {
    const hop = unmap(raw)
    if (!isIP(hop)) return undefined
    addr = hop
    if (!inList(trusted, hop)) break
  }
  return addr
}

export type Webhook =
  | { kind: 'text'; text: Text }
  | { kind: 'ignored'; reason: string }
  | { kind: 'rejected'; status: number; reason: string }

/** A value at a dotted path: own properties only, numbers index arrays. */
function getPath(obj: unknown, path: string): string | undefined {
  let at = obj
  for (const p of path.split('.')) {
    if (Array.isArray(at) && /^\d+$/.test(p)) at = at[Number(p)]
    else if (at && typeof at === 'object' && !Array.isArray(at) && Object.hasOwn(at, p))
      at = (at as Record<string, unknown>)[p]
    else return undefined
  }
  if (typeof at === 'string') return at
  return typeof at === 'number' && Number.isFinite(at) ? String(at) : undefined
}

/** The text in a webhook, form-encoded or JSON, by the ITSP's field names. */
export function readWebhook(
  inbound: Inbound,
  contentType: string | undefined,
  raw: Buffer,
  countryCode?: string,
): Webhook {
  const [media = '', ...params] = (contentType ?? '').split(';').map((s) => s.trim().toLowerCase())
  const charset = params
    .find((p) => p.startsWith('charset='))
    ?.slice(8)
    .replace(/"/g, '')
  if (charset && charset !== 'utf-8' && charset !== 'utf8')
    return { kind: 'rejected', status: 415, reason: `charset ${JSON.stringify(charset.slice(0, 40))}; expected UTF-8` }
  let get: (name: string) => string | undefined
  if (media === 'application/x-www-form-urlencoded') {
    const form = new URLSearchParams(raw.toString('utf8'))
    get = (name) => form.get(name) ?? undefined
  } else if (media === 'application/json' || media.endsWith('+json')) {
    let json: unknown
    try {
      json = JSON.parse(raw.toString('utf8'))
    } catch {
      return { kind: 'rejected', status: 400, reason: 'body is not JSON' }
    }
    if (!json || typeof json !== 'object' || Array.isArray(json))
      return { kind: 'rejected', status: 400, reason: 'body is not a JSON object' }
    get = (path) => getPath(json, path)
  } else {
    return {
      kind: 'rejected',
      status: 415,
      reason: `content type ${JSON.stringify(media.slice(0, 60))}; expected application/x-www-form-urlencoded or application/json`,
    }
  }
  for (const [path, want] of inbound.match) {
    const got = get(path)
    if (got !== want)
      return {
        kind: 'ignored',
        reason: `${path} is ${JSON.stringify((got ?? '').slice(0, 40))}, not ${JSON.stringify(want)}`,
      }
  }
  const [rawTo, rawFrom, rawBody] = [get(inbound.fields.to), get(inbound.fields.from), get(inbound.fields.body)]
  if (rawTo === undefined || rawFrom === undefined || rawBody === undefined) {
    const missing = [
      [inbound.fields.to, rawTo],
      [inbound.fields.from, rawFrom],
      [inbound.fields.body, rawBody],
    ]
      .filter(([, v]) => v === undefined)
      .map(([k]) => k)
    return { kind: 'rejected', status: 400, reason: `missing field(s) ${missing.join(', ')}` }
  }
  const to = normalizeNumber(rawTo, countryCode)
  if (!to?.startsWith('+'))
    return {
      kind: 'rejected',
      status: 400,
      reason: `${inbound.fields.to} ${JSON.stringify(rawTo.slice(0, 40))} is not a phone number`,
    }
  const from = normalizeSender(rawFrom, countryCode)
  if (!from)
    return {
      kind: 'rejected',
      status: 400,
      reason: `${inbound.fields.from} ${JSON.stringify(rawFrom.slice(0, 40))} is not a phone number or sender id`,
    }
  // A message without text (a picture, say) still tells the user someone wrote.
  const body = sanitizeText(rawBody)
  return { kind: 'text', text: { to, from, body: body.trim() ? body : EMPTY_TEXT } }
}
