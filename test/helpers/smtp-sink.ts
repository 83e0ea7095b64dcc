// A real SMTP server (on 127.0.0.1 unless told) that keeps every message it accepts, for tests of mail senders.
import { readFile } from 'node:fs/promises'
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import { join } from 'node:path'
import { execa } from 'execa'
import { SMTPServer } from 'smtp-server'

export interface Received {
  from: string
  to: string[]
  /** MAIL FROM parameters, upper-case keys, e.g. BODY=8BITMIME. */
  mailFromArgs: Record<string, unknown>
  data: Buffer
  secure: boolean
  user?: string
}

export interface SinkOptions {
  /** none: no STARTTLS offered; starttls: offered; implicit: TLS from the first byte. */
  tls: 'none' | 'starttls' | 'implicit'
  cert?: { key: Buffer; cert: Buffer }
  /** Accounts that may log in; without it, login is neither offered nor required. */
  users?: Record<string, string>
  port?: number
  /** Awaited after a message's data arrived and before the server's reply: a slow server. */
  beforeReply?: () => Promise<void>
  /** The address to listen on: 127.0.0.1, or the host's end of a Docker bridge for a container. */
  host?: string
  /** Refuse every message with this reply, at RCPT TO or after DATA. */
  refuse?: { at: 'rcpt' | 'data'; code: number; text: string }
}

export interface Sink {
  port: number
  received: Received[]
  /** Every reply with which `refuse` turned a message down, by recipient. */
  refusals: Array<{ to: string; code: number }>
  /** Every login attempt, with the password the client sent. */
  logins: Array<{ user: string; password: string }>
  close(): Promise<void>
}

function reply(code: number, text: string): Error {
  return Object.assign(new Error(text), { responseCode: code })
}

export async function startSmtpSink(opts: SinkOptions): Promise<Sink> {
  const received: Received[] = []
  const logins: Sink['logins'] = []
  const refusals: Sink['refusals'] = []
  const { users, refuse } = opts
  const server = new SMTPServer({
    logger: false,
    secure: opts.tls === 'implicit',
    ...(opts.cert ?? {}),
    disabledCommands: [...(opts.tls === 'none' ? ['STARTTLS'] : []), ...(users ? [] : ['AUTH'])],
    authOptional: !users,
    // The tests log in over plain SMTP too, to see that -P smtp means plain.
    allowInsecureAuth: true,
    closeTimeout: 1000,
    onAuth(auth, _session, cb) {
      logins.push({ user: auth.username ?? '', password: auth.password ?? '' })
      if (users && auth.username !== undefined && users[auth.username] === auth.password)
        cb(null, { user: auth.username })
      else cb(reply(535, '5.7.8 Authentication credentials invalid'))
    },
    onRcptTo(address, _session, cb) {
      if (refuse?.at !== 'rcpt') return cb()
      refusals.push({ to: address.address, code: refuse.code })
      cb(reply(refuse.code, refuse.text))
    },
    onData(stream, session, cb) {
      const chunks: Buffer[] = []
      stream.on('data', (c: Buffer) => chunks.push(c))
      const answer = () => {
        const mailFrom = session.envelope.mailFrom
        if (refuse?.at === 'data') {
          refusals.push(...session.envelope.rcptTo.map((r) => ({ to: r.address, code: refuse.code })))
          return cb(reply(refuse.code, refuse.text))
        }
        received.push({
          from: mailFrom ? mailFrom.address : '',
          to: session.envelope.rcptTo.map((r) => r.address),
          mailFromArgs: mailFrom ? (mailFrom.args as Record<string, unknown>) : {},
          data: Buffer.concat(chunks),
          secure: session.secure,
          user: session.user,
        })
        cb()
      }
      stream.on('end', () => void (opts.beforeReply?.() ?? Promise.resolve()).then(answer))
    },
  })
  // A client that drops a TLS handshake (as a verifying client does) is an 'error' here, not a test failure.
  server.on('error', () => {})
  await new Promise<void>((resolve, reject) => {
    server.server.once('error', reject)
    server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => resolve())
  })
  return {
    port: (server.server.address() as AddressInfo).port,
    received,
    refusals,
    logins,
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  }
}

/** A server on 127.0.0.1 that takes connections and never says a word: a send to it hangs. */
export async function startSilentServer(): Promise<{ port: number; server: Server; close(): void }> {
  const sockets = new Set<Socket>()
  const server = createServer((s) => sockets.add(s))
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  return {
    port: (server.address() as AddressInfo).port,
    server,
    close() {
      for (const s of sockets) s.destroy()
      server.close()
    },
  }
}

/** A throwaway self-signed certificate for 127.0.0.1 and localhost, made by openssl. */
export async function selfSignedCert(dir: string): Promise<{ key: Buffer; cert: Buffer; certFile: string }> {
  const keyFile = join(dir, 'smtp-key.pem')
  const certFile = join(dir, 'smtp-cert.pem')
  await execa('openssl', [
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-days',
    '2',
    '-subj',
    '/CN=localhost',
    '-addext',
    'subjectAltName=IP:127.0.0.1,DNS:localhost',
    '-keyout',
    keyFile,
    '-out',
    certFile,
  ])
  return { key: await readFile(keyFile), cert: await readFile(certFile), certFile }
}
