// A minimal SIP UAC for one thing: sending a text to Asterisk as a MESSAGE over UDP (RFC 3428), as
// a non-INVITE client transaction (RFC 3261 17.1.2): retransmit on timer E, give up on timer F,
// settle on the first final response.
import { randomUUID } from 'node:crypto'
import { createSocket, type Socket } from 'node:dgram'

/**
 * Asterisk copies at most 1023 body bytes of a MESSAGE into the dial plan and drops longer bodies
 * whole (res_pjsip_messaging.c, MAX_BODY_SIZE 1024). Base64 of 750 bytes is 1000: a part this
 * long fits either way.
 */
export const MAX_PART_BYTES = 750
const MAX_WIRE_BODY = 1000

export interface SipText {
  /** The number texted: the Request-URI's and To's user. */
  to: string
  /** The sender's number or id: From's user. */
  from: string
  /** Shown by phones instead of From's user, e.g. for an alphanumeric sender. */
  fromName?: string
  body: string
}

export interface SipTarget {
  host: string
  port: number
}

export interface SipResponse {
  status: number
  reason: string
}

export class SipTimeoutError extends Error {
  constructor(target: SipTarget, ms: number) {
    super(`no final response from ${target.host}:${target.port} within ${ms} ms`)
    this.name = 'SipTimeoutError'
  }
}

/**
 * A user part as RFC 3261 allows it (unreserved and user-unreserved characters); anything else is
 * percent-encoded, so no value can end the URI or the header line.
 */
const USER_CHARS = /^[A-Za-z0-9\-_.!~*'()&=+$,;?/]*$/

export function sipUser(user: string): string {
  if (!user) throw new RangeError('a SIP user part must not be empty')
  if (USER_CHARS.test(user)) return user
  return Array.from(Buffer.from(user), (b) => {
    const c = String.fromCharCode(b)
    return USER_CHARS.test(c) ? c : `%${b.toString(16).toUpperCase().padStart(2, '0')}`
  }).join('')
}

/** A display name as a quoted-string; control characters have no place in a header. */
export function quotedName(name: string): string {
  if (/[\x00-\x1f\x7f]/.test(name))
    throw new RangeError(`a display name must be one line without control characters, got ${JSON.stringify(name)}`)
  return `"${name.replace(/["\\]/g, '\\$&')}"`
}

/**
 * Asterisk strips line breaks at the end of a body, and a NUL would end it: such a text travels
 * base64-encoded, which the dial plan's sub_decode_body undoes (X-Body-Encoding).
 */
export function needsEncoding(body: string): boolean {
  return /[\r\n]$|\0/.test(body)
}

/**
 * A text cut into parts of at most `maxBytes` UTF-8 bytes, between graphemes (an emoji with its
 * modifiers stays whole), after a space or line break where one is near the end. A grapheme too
 * big for a part on its own (hundreds of combining marks) is cut between code points.
 */
export function splitText(text: string, maxBytes = MAX_PART_BYTES): string[] {
  const bytes = (s: string) => Buffer.byteLength(s)
  if (bytes(text) <= maxBytes) return [text]
  const units = Array.from(
    new Intl.Segmenter(undefined, { granularity: 'grapheme' }).segment(text),
    ({ segment }) => segment,
  )
  const parts: string[] = []
  let part = ''
  let size = 0
  let breakAt = -1
  // A grapheme larger than a whole part is split by code point: the only split left.
  // oxlint-disable-next-line typescript/no-misused-spread
  for (const segment of units.flatMap((g) => (bytes(g) > maxBytes ? [...g] : [g]))) {
    const n = bytes(segment)
    if (size + n > maxBytes && part) {
      const cut = breakAt > part.length * 0.75 ? breakAt : part.length
      parts.push(part.slice(0, cut))
      part = part.slice(cut)
      size = bytes(part)
      breakAt = -1
    }
    part += segment
    size += n
    if (/^\s+$/.test(segment)) breakAt = part.length
  }
  if (part) parts.push(part)
  return parts
}

export interface MessageIds {
  branch: string
  tag: string
  callId: string
}

/** The request's bytes. Pure, for tests; header values are built from checked parts only. */
export function buildMessage(target: SipTarget, local: SipTarget, text: SipText, ids: MessageIds): Buffer {
  const encode = needsEncoding(text.body)
  const body = Buffer.from(encode ? Buffer.from(text.body).toString('base64') : text.body)
  if (body.length > MAX_WIRE_BODY)
    throw new RangeError(
      `a MESSAGE body must be at most ${MAX_WIRE_BODY} bytes on the wire (split it with splitText), got ${body.length}`,
    )
  const to = `sip:${sipUser(text.to)}@${target.host}`
  const head = [
    `MESSAGE ${to}:${target.port} SIP/2.0`,
    `Via: SIP/2.0/UDP ${local.host}:${local.port};rport;branch=${ids.branch}`,
    'Max-Forwards: 70',
    `From: ${text.fromName ? `${quotedName(text.fromName)} ` : ''}<sip:${sipUser(text.from)}@${local.host}>;tag=${ids.tag}`,
    `To: <${to}>`,
    `Call-ID: ${ids.callId}`,
    'CSeq: 1 MESSAGE',
    'User-Agent: PrivateDial-WebSMS',
    'Content-Type: text/plain;charset=UTF-8',
    ...(encode ? ['X-Body-Encoding: base64'] : []),
    `Content-Length: ${body.length}`,
  ]
  return Buffer.concat([Buffer.from(`${head.join('\r\n')}\r\n\r\n`), body])
}

export interface ParsedResponse extends SipResponse {
  /** The top Via's branch, which names the transaction. */
  branch: string | undefined
  cseqMethod: string | undefined
}

/** A response's status and transaction; undefined for a request or garbage. */
export function parseResponse(datagram: Buffer): ParsedResponse | undefined {
  const text = datagram.toString('utf8')
  const end = text.indexOf('\r\n\r\n')
  const [start = '', ...lines] = (end < 0 ? text : text.slice(0, end)).split(/\r?\n/)
  const m = /^SIP\/2\.0 ([1-6]\d\d) ?(.*)$/.exec(start)
  if (!m) return undefined
  let branch: string | undefined
  let cseqMethod: string | undefined
  for (const line of lines) {
    const colon = line.indexOf(':')
    if (colon < 0) continue
    const name = line.slice(0, colon).trim().toLowerCase()
    const value = line.slice(colon + 1).trim()
    if ((name === 'via' || name === 'v') && branch === undefined)
      branch = /;\s*branch=([^;,\s]+)/i.exec(value)?.[1] ?? ''
    else if (name === 'cseq') cseqMethod = value.split(/\s+/)[1]
  }
  return { status: Number(m[1]), reason: m[2]!.trim(), branch, cseqMethod }
}

export interface SipClientOptions {
  /** Source address and port: Asterisk identifies the WebSMS service by them. */
  localAddress?: string
  localPort?: number
  /** RFC 3261 T1 and T2; timer F (the give-up) is 64*T1 unless timeoutMs says otherwise. */
  t1Ms?: number
  t2Ms?: number
  timeoutMs?: number
}

export interface SipClient {
  /** The bound source port. */
  port: number
  /** Resolves with the final response; rejects with SipTimeoutError when there is none. */
  send(target: SipTarget, text: SipText): Promise<SipResponse>
  close(): Promise<void>
}

interface Transaction {
  settle(r: SipResponse | Error): void
  provisional(): void
}

export async function openSipClient(opts: SipClientOptions = {}): Promise<SipClient> {
  const t1 = opts.t1Ms ?? 500
  const t2 = opts.t2Ms ?? 4000
  const timeoutMs = opts.timeoutMs ?? 64 * t1
  const host = opts.localAddress ?? '127.0.0.1'
  const socket: Socket = createSocket('udp4')
  const pending = new Map<string, Transaction>()
  await new Promise<void>((resolve, reject) => {
    socket.once('error', reject)
    socket.bind(opts.localPort ?? 0, host, () => {
      socket.off('error', reject)
      resolve()
    })
  })
  // A send error is reported to its transaction; nothing else on this socket is fatal.
  socket.on('error', () => {})
  socket.on('message', (datagram) => {
    const r = parseResponse(datagram)
    if (!r?.branch || r.cseqMethod !== 'MESSAGE') return
    const tx = pending.get(r.branch)
    if (!tx) return
    if (r.status < 200) tx.provisional()
    else tx.settle({ status: r.status, reason: r.reason })
  })
  const local = { host, port: socket.address().port }

  return {
    port: local.port,
    send(target, text) {
      // randomUUID draws from a cached pool: unique ids without a system call per text.
      const uuid = randomUUID().replaceAll('-', '')
      const ids = { branch: `z9hG4bK${uuid.slice(0, 20)}`, tag: uuid.slice(20), callId: `${randomUUID()}@${host}` }
      const datagram = buildMessage(target, local, text, ids)
      return new Promise<SipResponse>((resolve, reject) => {
        let interval = t1
        let retransmit: NodeJS.Timeout | undefined
        const transmit = () =>
          socket.send(datagram, target.port, target.host, (err) => {
            if (err) tx.settle(err)
          })
        const schedule = () => {
          retransmit = setTimeout(() => {
            transmit()
            interval = Math.min(interval * 2, t2)
            schedule()
          }, interval)
        }
        const giveUp = setTimeout(() => tx.settle(new SipTimeoutError(target, timeoutMs)), timeoutMs)
        const tx: Transaction = {
          settle(r) {
            if (!pending.delete(ids.branch)) return
            clearTimeout(retransmit)
            clearTimeout(giveUp)
            if (r instanceof Error) reject(r)
            else resolve(r)
          },
          // Proceeding: the request arrived; only keep it alive at T2 (RFC 3261 17.1.2.2).
          provisional() {
            interval = t2
          },
        }
        pending.set(ids.branch, tx)
        transmit()
        schedule()
      })
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const tx of [...pending.values()]) tx.settle(new Error('SIP client closed'))
        socket.close(() => resolve())
      }),
  }
}
