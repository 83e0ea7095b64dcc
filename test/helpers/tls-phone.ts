// TLS from a phone's side: a phone on a TLS connection, written by hand (sipp here is built
// without TLS), and the certificate a handshake gets.
import { createHash, randomBytes } from 'node:crypto'
import type { TLSSocket } from 'node:tls'
import { execa } from 'execa'

const md5 = (s: string) => createHash('md5').update(s).digest('hex')

/** A phone's TLS connection that sends REGISTERs and reads the final answers, answering a digest challenge. */
export class TlsPhone {
  private buffer = ''
  private waiting: ((msg: string) => void)[] = []
  private cseq = 1
  private readonly callId = randomBytes(8).toString('hex')
  private readonly tag = randomBytes(4).toString('hex')
  readonly socket: TLSSocket
  readonly user: string
  readonly password: string
  readonly host: string
  constructor(socket: TLSSocket, user: string, password: string, host: string) {
    this.socket = socket
    this.user = user
    this.password = password
    this.host = host
    socket.setEncoding('utf8')
    socket.on('data', (d: string) => {
      this.buffer += d
      for (let end = this.buffer.indexOf('\r\n\r\n'); end >= 0; end = this.buffer.indexOf('\r\n\r\n')) {
        const head = this.buffer.slice(0, end)
        const len = Number(/^Content-Length:\s*(\d+)/im.exec(head)?.[1] ?? 0)
        if (this.buffer.length < end + 4 + len) break
        const msg = this.buffer.slice(0, end + 4 + len)
        this.buffer = this.buffer.slice(end + 4 + len)
        if (/^SIP\/2\.0 [2-6]\d\d/.test(msg)) this.waiting.shift()?.(msg)
      }
    })
  }
  private request(authorization?: string): Promise<string> {
    const { port } = this.socket.address() as { port: number }
    const uri = `sip:${this.host}`
    const msg = [
      `REGISTER ${uri};transport=tls SIP/2.0`,
      `Via: SIP/2.0/TLS 127.0.0.1:${port};rport;branch=z9hG4bK${randomBytes(6).toString('hex')}`,
      `From: <sip:${this.user}@${this.host}>;tag=${this.tag}`,
      `To: <sip:${this.user}@${this.host}>`,
      `Call-ID: ${this.callId}`,
      `CSeq: ${this.cseq++} REGISTER`,
      `Contact: <sip:${this.user}@127.0.0.1:${port};transport=tls>`,
      'Expires: 300',
      'Max-Forwards: 70',
      ...(authorization ? [`Authorization: ${authorization}`] : []),
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n')
    return new Promise((resolve) => {
      this.waiting.push(resolve)
      this.socket.write(msg)
    })
  }
  /** REGISTER, answering the 401 challenge; the final status code. */
  async register(): Promise<number> {
    const challenge = await this.request()
    const www = /^WWW-Authenticate:\s*Digest (.*)$/im.exec(challenge)?.[1]
    if (!www) return Number(challenge.slice(8, 11))
    const p = Object.fromEntries([...www.matchAll(/(\w+)="?([^",]*)"?/g)].map((m) => [m[1], m[2]]))
    const uri = `sip:${this.host}`
    const cnonce = randomBytes(8).toString('hex')
    const ha1 = md5(`${this.user}:${p.realm}:${this.password}`)
    const ha2 = md5(`REGISTER:${uri}`)
    const response = md5(`${ha1}:${p.nonce}:00000001:${cnonce}:auth:${ha2}`)
    const auth = `Digest username="${this.user}", realm="${p.realm}", nonce="${p.nonce}", uri="${uri}", response="${response}", algorithm=MD5, qop=auth, nc=00000001, cnonce="${cnonce}"${p.opaque ? `, opaque="${p.opaque}"` : ''}`
    const final = await this.request(auth)
    return Number(final.slice(8, 11))
  }
}

/** The certificate a new TLS handshake on 127.0.0.1:`port` gets: its subject, serial and SHA-256 fingerprint. */
export async function served(port: number): Promise<string> {
  const s = await execa('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost'], {
    input: '',
    reject: false,
    timeout: 10_000,
  })
  const pem = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/.exec(s.stdout)?.[0] ?? ''
  const x = await execa('openssl', ['x509', '-noout', '-subject', '-serial', '-fingerprint', '-sha256'], {
    input: pem,
    reject: false,
  })
  return x.stdout
}
