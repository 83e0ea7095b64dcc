// A renewed certificate on a real Asterisk: written by the certificate module, taken up by the
// res_pjsip reload that run does, served to new TLS handshakes, while a phone registered over TLS
// keeps its connection and registration.
import t from 'tap'
import { createHash, randomBytes } from 'node:crypto'
import { rm } from 'node:fs/promises'
import { connect, type TLSSocket } from 'node:tls'
import { execa } from 'execa'
import { ensureCertificate } from '../../src/cert/keeper.ts'
import { memoryLogger } from '../../src/base/log.ts'
import { findAsterisk, startTestPbx, USERS } from '../helpers/asterisk.ts'

const md5 = (s: string) => createHash('md5').update(s).digest('hex')

/** A phone's TLS connection that sends REGISTERs and reads the final answers, answering a digest challenge. */
class TlsPhone {
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

/** The certificate a new TLS handshake gets: its subject and SHA-256 fingerprint. */
async function served(port: number): Promise<string> {
  const s = await execa('openssl', ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'localhost'], {
    input: '',
    reject: false,
    timeout: 10_000,
  })
  const pem = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/.exec(s.stdout)?.[0] ?? ''
  const x = await execa('openssl', ['x509', '-noout', '-subject', '-fingerprint', '-sha256'], {
    input: pem,
    reject: false,
  })
  return x.stdout
}

const asterisk = findAsterisk()
if (typeof asterisk === 'string') t.plan(0, `skipped: ${asterisk}`)
else {
  const pbx = await startTestPbx(asterisk)
  t.teardown(() => pbx.stop())

  t.test('a renewed certificate is served to new handshakes; a phone on TLS stays registered', async (t) => {
    const before = await served(pbx.tlsPort)
    t.match(before, /subject=CN ?= ?localhost/, 'the first certificate is served')

    const socket = connect({ host: '127.0.0.1', port: pbx.tlsPort, rejectUnauthorized: false })
    await new Promise((r) => socket.once('secureConnect', r))
    t.teardown(() => socket.destroy())
    const phone = new TlsPhone(socket, 'alice', USERS.alice.password, '127.0.0.1')
    t.equal(await phone.register(), 200, 'alice registers over TLS')
    const contact = new RegExp(`alice/sip:alice@127\\.0\\.0\\.1:${socket.localPort};transport=tls`, 'i')
    t.match(await pbx.rx('pjsip show contacts'), contact, "the contact is this connection's")

    // What run does when the certificate changes: the module writes the files atomically, then
    // res_pjsip is reloaded.
    const log = memoryLogger('cert')
    const certFile = `${pbx.dir}/ssl/cert.pem`
    const keyFile = `${pbx.dir}/ssl/priv_key.pem`
    await rm(certFile)
    const r = await ensureCertificate({
      mode: 'selfsigned',
      certFile,
      keyFile,
      hostname: 'pbx.example.com',
      logger: log,
    })
    t.equal(r.changed, true, 'a new certificate was written')
    await pbx.rx('module reload res_pjsip.so')

    const after = await served(pbx.tlsPort)
    t.match(after, /subject=.*CN ?= ?pbx\.example\.com/, 'new handshakes get the new certificate')
    t.not(after, before)
    t.equal(socket.destroyed, false, "the phone's TLS connection is still open")
    t.equal(await phone.register(), 200, 'and its registration refresh on it is answered')
    t.match(await pbx.rx('pjsip show contacts'), contact, 'alice is still registered over the same TLS connection')
  })
}
