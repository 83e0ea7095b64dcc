// A soft-phone for the texts tests, on UDP at 127.0.0.1: it registers (digest auth), answers
// OPTIONS and MESSAGE with 200 like a phone that is online, or nothing at all like one that went
// away without unregistering, and keeps every text it took. sipp can't stay registered and answer
// both OPTIONS and texts for as long as a test needs, telling the test of each text as it comes.
import { createHash, randomBytes } from 'node:crypto'
import { createSocket, type Socket } from 'node:dgram'
import { EventEmitter, once } from 'node:events'
import { freePort } from './asterisk.ts'
import { parseSipMessage, type SipMessage } from './sipp.ts'

export interface Phone {
  port: number
  uri: string
  callId: string
  /** Texts taken, in order, retransmissions left out. */
  texts: SipMessage[]
  register(expires?: number): Promise<number>
  /** Stop answering anything, as a phone that lost its network. */
  silence(): void
  answer(): void
  /** Resolves once `n` texts were taken; rejects after `timeoutMs`. */
  waitForTexts(n: number, timeoutMs?: number): Promise<SipMessage[]>
  close(): Promise<void>
}

const md5 = (s: string) => createHash('md5').update(s).digest('hex')

export async function startPhone(opts: {
  target: { host: string; port: number }
  user: string
  password: string
  port?: number
  /** The Call-ID of its registrations: a phone that moved networks keeps its own. */
  callId?: string
}): Promise<Phone> {
  const port = opts.port ?? (await freePort())
  const socket: Socket = createSocket('udp4')
  await new Promise<void>((resolve) => socket.bind(port, '127.0.0.1', resolve))
  const events = new EventEmitter()
  const texts: SipMessage[] = []
  const seen = new Set<string>()
  let silent = false
  let closed = false
  // A phone that moved goes on counting where it was.
  let cseq = opts.callId ? 1000 : 0
  const callId = opts.callId ?? `${randomBytes(8).toString('hex')}@127.0.0.1`
  const tag = randomBytes(4).toString('hex')
  const uri = `sip:${opts.user}@127.0.0.1:${port}`
  const send = (text: string) => socket.send(text, opts.target.port, opts.target.host)

  socket.on('message', (buf) => {
    const msg = parseSipMessage('received', buf.toString('utf8'))
    if (msg.status !== undefined) {
      events.emit('response', msg)
      return
    }
    if (silent) return
    const keep = msg.headers.filter((h) => /^(via|from|call-id|cseq)$/i.test(h.name))
    const to = msg.header('To') ?? ''
    send(
      [
        'SIP/2.0 200 OK',
        ...keep.map((h) => `${h.name}: ${h.value}`),
        `To: ${to}${to.includes(';tag=') ? '' : `;tag=${tag}`}`,
        'Content-Length: 0',
        '',
        '',
      ].join('\r\n'),
    )
    if (msg.method !== 'MESSAGE') return
    const key = `${msg.header('Call-ID')} ${msg.header('CSeq')}`
    if (seen.has(key)) return
    seen.add(key)
    texts.push(msg)
    events.emit('text')
  })

  /** Sends a REGISTER; returns what sends the same one again. */
  const request = (expires: number, auth?: string) => {
    const branch = `z9hG4bK${randomBytes(8).toString('hex')}`
    const host = `${opts.target.host}:${opts.target.port}`
    const text = [
      `REGISTER sip:${host} SIP/2.0`,
      `Via: SIP/2.0/UDP 127.0.0.1:${port};rport;branch=${branch}`,
      'Max-Forwards: 70',
      `From: <sip:${opts.user}@${opts.target.host}>;tag=${tag}`,
      `To: <sip:${opts.user}@${opts.target.host}>`,
      `Call-ID: ${callId}`,
      `CSeq: ${++cseq} REGISTER`,
      `Contact: <${uri}>`,
      `Expires: ${expires}`,
      ...(auth ? [`Authorization: ${auth}`] : []),
      'User-Agent: texts-test-phone',
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n')
    send(text)
    return () => send(text)
  }

  /** The final response to what `send` sent, which it sends again every 500 ms as UDP needs. */
  const response = async (resend: () => void, timeoutMs = 10_000) => {
    const again = setInterval(resend, 500)
    try {
      for (;;) {
        const [msg] = (await once(events, 'response', { signal: AbortSignal.timeout(timeoutMs) })) as [SipMessage]
        // A late answer to an earlier REGISTER is not this one's.
        if ((msg.status ?? 0) >= 200 && msg.header('CSeq') === `${cseq} REGISTER`) return msg
      }
    } finally {
      clearInterval(again)
    }
  }

  return {
    port,
    uri,
    callId,
    texts,
    async register(expires = 300) {
      let r = await response(request(expires))
      if (r.status === 401) {
        const challenge = r.header('WWW-Authenticate') ?? ''
        const param = (k: string) => new RegExp(`${k}="?([^",]+)"?`).exec(challenge)?.[1] ?? ''
        const realm = param('realm')
        const nonce = param('nonce')
        const reqUri = `sip:${opts.target.host}:${opts.target.port}`
        const cnonce = randomBytes(4).toString('hex')
        const ha1 = md5(`${opts.user}:${realm}:${opts.password}`)
        const ha2 = md5(`REGISTER:${reqUri}`)
        const qop = param('qop') ? 'auth' : ''
        const digest = qop ? md5(`${ha1}:${nonce}:00000001:${cnonce}:auth:${ha2}`) : md5(`${ha1}:${nonce}:${ha2}`)
        const opaque = param('opaque')
        r = await response(
          request(
            expires,
            `Digest username="${opts.user}", realm="${realm}", nonce="${nonce}", uri="${reqUri}", response="${digest}", algorithm=MD5` +
              (qop ? `, qop=auth, nc=00000001, cnonce="${cnonce}"` : '') +
              (opaque ? `, opaque="${opaque}"` : ''),
          ),
        )
      }
      return r.status ?? 0
    },
    silence: () => void (silent = true),
    answer: () => void (silent = false),
    async waitForTexts(n, timeoutMs = 30_000) {
      const deadline = AbortSignal.timeout(timeoutMs)
      while (texts.length < n) {
        try {
          await once(events, 'text', { signal: deadline })
        } catch {
          throw new Error(
            `${opts.user}'s phone on ${port} took ${texts.length} text(s) within ${timeoutMs} ms, expected ${n}`,
          )
        }
      }
      return texts.slice(0, n)
    },
    close: () =>
      closed
        ? Promise.resolve()
        : new Promise<void>((resolve) => {
            closed = true
            socket.close(() => resolve())
          }),
  }
}
