// Peers of the WebSMS service for tests and the benchmark: an HTTP server standing in for an ITSP's
// SMS API, a config dir made from the shipped one, and webhooks signed as Telnyx signs them.
import { generateKeyPairSync, sign, type KeyObject } from 'node:crypto'
import { once } from 'node:events'
import { cp, mkdtemp, readFile, writeFile } from 'node:fs/promises'
import { createServer, type IncomingHttpHeaders } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseConf, printConf, setValue } from '../../src/config/conf.ts'
import { SHIPPED_CONFIG } from './asterisk.ts'

export interface Posted {
  method: string | undefined
  url: string | undefined
  headers: IncomingHttpHeaders
  body: string
}

export interface ItspStandIn {
  url: string
  posted: Posted[]
  /** The status the next posts get, in order; when empty, 200. */
  answers: number[]
  /** Resolves once `n` posts have arrived. */
  waitFor(n: number, timeoutMs?: number): Promise<Posted[]>
  close(): Promise<void>
}

export async function startItsp(): Promise<ItspStandIn> {
  const posted: Posted[] = []
  const answers: number[] = []
  let waiters: Array<() => void> = []
  const server = createServer((req, res) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      posted.push({
        method: req.method,
        url: req.url,
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      })
      const status = answers.shift() ?? 200
      res.writeHead(status, { 'content-type': 'application/json' })
      res.end(
        status < 300 ? '{"id":"s1","status":"created"}' : `{"errors":[{"title":"status ${status} from the stand-in"}]}`,
      )
      for (const w of waiters) w()
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    posted,
    answers,
    waitFor: (n, timeoutMs = 30_000) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`the ITSP stand-in got ${posted.length} post(s), not ${n}, within ${timeoutMs} ms`)),
          timeoutMs,
        )
        const check = () => {
          if (posted.length < n) return
          clearTimeout(timer)
          waiters = waiters.filter((w) => w !== check)
          resolve(posted.slice(0, n))
        }
        waiters.push(check)
        check()
      }),
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve())
        server.closeAllConnections()
      }),
  }
}

/**
 * A copy of the shipped config dir with websms.conf, the dial plan's WEBSMS_API_PORT and Asterisk's
 * UDP port set: what the service reads in production, on test ports.
 */
export async function websmsConfDir(opts: { websms: string; apiPort: number; sipPort: number }): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'pd-websms-'))
  await cp(SHIPPED_CONFIG, dir, { recursive: true })
  const edit = async (file: string, change: (doc: ReturnType<typeof parseConf>) => void) => {
    const doc = parseConf(await readFile(join(dir, file), 'utf8'), file)
    change(doc)
    await writeFile(join(dir, file), printConf(doc))
  }
  await edit('extensions_local.conf', (doc) => setValue(doc, 'globals', 'WEBSMS_API_PORT', String(opts.apiPort)))
  await edit('pjsip_transport.conf', (doc) => setValue(doc, 't_wan', 'bind', `127.0.0.1:${opts.sipPort}`))
  await writeFile(join(dir, 'websms.conf'), opts.websms, { mode: 0o600 })
  return dir
}

export interface SigningKey {
  /** For inbound_public_key. */
  publicKey: string
  privateKey: KeyObject
}

export function signingKey(): SigningKey {
  const pair = generateKeyPairSync('ed25519')
  const x = pair.publicKey.export({ format: 'jwk' }).x!
  return { publicKey: Buffer.from(x, 'base64url').toString('base64'), privateKey: pair.privateKey }
}

/** Telnyx's headers for a body, signed at `at` (Unix seconds). */
export function telnyxHeaders(
  key: SigningKey,
  body: string,
  at = Math.floor(Date.now() / 1000),
): Record<string, string> {
  const signature = sign(null, Buffer.from(`${at}|${body}`), key.privateKey).toString('base64')
  return { 'content-type': 'application/json', 'telnyx-signature-ed25519': signature, 'telnyx-timestamp': String(at) }
}

/** A Telnyx message.received webhook, shaped as in its API reference. */
export function telnyxInbound(to: string, from: string, text: string, eventType = 'message.received'): string {
  return JSON.stringify({
    data: {
      record_type: 'event',
      id: 'bf6307bd-884d-4c1f-b6ea-c62b8c495d3c',
      event_type: eventType,
      occurred_at: '2026-01-23T18:10:02.574Z',
      payload: {
        record_type: 'message',
        direction: 'inbound',
        type: 'SMS',
        from: { phone_number: from, carrier: 'T-MOBILE USA, INC.', line_type: 'Wireless' },
        to: [{ phone_number: to, status: 'delivered' }],
        cc: [],
        text,
        media: [],
        encoding: 'UCS-2',
        parts: 1,
      },
    },
    meta: { attempt: 1, delivered_to: 'https://example.com/webhooks' },
  })
}
