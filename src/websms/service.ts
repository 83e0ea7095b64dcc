// WebSMS: texts between users' phones and ITSPs' HTTP SMS APIs.
//
// In: the ITSP posts a webhook to the public listener (WEBSMS_PORT). It is checked (source network,
// credentials or signature, size, fields), queued on disk, acknowledged, then sent to Asterisk as a
// SIP MESSAGE from 127.0.0.1, where the websms endpoint takes it into dp_entry_text_in and on to
// every registered phone of the user whose number it is.
// Out: the dial plan's sub_text_trunk posts a user's text to the loopback API listener
// (WEBSMS_API_PORT in extensions_local.conf); it is queued and posted to the user's ITSP. A text
// the ITSP does not take comes back to the sender as a text saying so.
import { stat, readFile } from 'node:fs/promises'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import { join } from 'node:path'
import { readConfTree } from '../config/files.ts'
import { ConfigError, errorMessage, wrap } from '../base/errors.ts'
import type { Logger } from '../base/log.ts'
import { openSipClient, SipTimeoutError, splitText, type SipClient } from './sip-message.ts'
import { parseWebsmsConf, websmsWiring, WEBSMS_CONF, type Itsp, type WebsmsConfig, type Wiring } from './config.ts'
import {
  checkCredentials,
  checkSignature,
  clientAddress,
  inList,
  normalizeNumber,
  outboundRequest,
  readWebhook,
  sanitizeText,
} from './itsp.ts'
import { noticeText, oneLine } from './notice.ts'
import { openQueue, type LanePolicy, type Outcome, type Queue, type QueueItem } from './queue.ts'
import { createServer } from '../base/http.ts'

/** Largest request body either listener reads; more gets 413. */
export const MAX_BODY_BYTES = 64 * 1024
export const DEFAULT_SPOOL_DIR = '/var/spool/asterisk/websms'
const ITSP_TIMEOUT_MS = 20_000
const ASTERISK_LANE = 'asterisk'

/** A text for a phone, through Asterisk; or one for an ITSP. */
export type Job =
  | { kind: 'deliver'; to: string; from: string; body: string; index?: string }
  | { kind: 'send'; index: string; to: string; from: string; body: string }

export interface WebsmsOptions {
  /** Where websms.conf, extensions.conf and pjsip.conf are. */
  confDir: string
  /** The public webhook listener's port (WEBSMS_PORT); 0 picks a free one. */
  port: number
  /** Its address; default all IPv4 addresses. */
  host?: string
  /** The on-disk queue (WEBSMS_SPOOL_DIR). */
  spoolDir: string
  log: Logger
  /** Source port of the MESSAGEs to Asterisk; the shipped websms identify matches any port. */
  sipSourcePort?: number
  /** SIP timer T1 and the give-up time per attempt; default 500 ms and 32 s (RFC 3261). */
  sipT1Ms?: number
  sipTimeoutMs?: number
  /** Retry timing of the queue's lanes. */
  retry?: { asterisk?: Partial<LanePolicy>; itsp?: Partial<LanePolicy> }
  now?: () => number
}

export interface Websms {
  publicPort: number
  apiPort: number
  /**
   * Reads websms.conf and the ports again. On a problem the running configuration stays and the
   * ConfigError is thrown.
   */
  reload(): Promise<void>
  /** Deliver what waits now, e.g. once Asterisk is up. */
  flush(): void
  /** Texts waiting in the queue. */
  queued(): number
  close(): Promise<void>
}

const ASTERISK_POLICY: LanePolicy = { baseMs: 1000, maxMs: 60_000, maxAgeMs: Infinity }
const ITSP_POLICY: LanePolicy = { baseMs: 5000, maxMs: 120_000, maxAgeMs: 15 * 60_000 }

interface Loaded {
  config: WebsmsConfig
  wiring: Wiring
}

async function load(confDir: string, log: Logger): Promise<Loaded> {
  const path = join(confDir, WEBSMS_CONF)
  let text = ''
  try {
    text = await readFile(path, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw wrap(`reading ${path}`, err)
  }
  const config = parseWebsmsConf(text)
  const secrets = [...config.itsps.values()].some(
    (i) => i.outbound.auth.kind !== 'none' || (i.inbound && i.inbound.auth.kind !== 'none'),
  )
  const mode = (await stat(path).catch(() => undefined))?.mode
  if (secrets && mode !== undefined && mode & 0o077)
    log.warn(`${path} holds credentials and is readable by others (mode ${(mode & 0o777).toString(8)}); chmod 600 it`)
  const wiring = websmsWiring(
    (await readConfTree(confDir, 'extensions.conf')).docs,
    (await readConfTree(confDir, 'pjsip.conf')).docs,
  )
  return { config, wiring }
}

function describe(itsp: Itsp): string {
  // Origin and path only: some APIs take a key in the query string.
  const out = `${itsp.outbound.method} ${itsp.outbound.url.origin}${itsp.outbound.url.pathname}`
  const inb = itsp.inbound
  if (!inb) return `${itsp.preset}: texts out to ${out}; takes no webhooks (inbound_auth = off)`
  const path = `/inbound/${itsp.index}${inb.auth.kind === 'path' ? '/<inbound_secret>' : ''}`
  return `${itsp.preset}: texts out to ${out}; webhooks at ${path} (${inb.auth.kind})`
}

type ReadResult = Buffer | 'too-large' | 'aborted'

function readBody(req: IncomingMessage): Promise<ReadResult> {
  const declared = Number(req.headers['content-length'])
  if (declared > MAX_BODY_BYTES) return Promise.resolve('too-large')
  return new Promise((resolve) => {
    const chunks: Buffer[] = []
    let size = 0
    const onData = (c: Buffer) => {
      size += c.length
      if (size <= MAX_BODY_BYTES) chunks.push(c)
      else {
        req.off('data', onData)
        resolve('too-large')
      }
    }
    req.on('data', onData)
    req.once('end', () => resolve(Buffer.concat(chunks)))
    req.once('close', () => resolve('aborted'))
    req.once('error', () => resolve('aborted'))
  })
}

function reply(res: ServerResponse, status: number, text = '', close = false): void {
  if (res.headersSent) return
  const body = text ? `${text}\n` : ''
  res.writeHead(status, {
    ...(body ? { 'content-type': 'text/plain; charset=utf-8' } : {}),
    'content-length': Buffer.byteLength(body),
    ...(status === 405 ? { allow: 'POST' } : {}),
    // A body left unread (413) must not be taken for the next request.
    ...(close ? { connection: 'close' } : {}),
  })
  res.end(body)
}

function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(port, host, () => {
      server.off('error', reject)
      const addr = server.address()
      resolve(addr && typeof addr === 'object' ? addr.port : port)
    })
  })
}

function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve())
    server.closeAllConnections()
  })
}

function httpServer(handler: (req: IncomingMessage, res: ServerResponse) => Promise<void>, log: Logger): Server {
  const server = createServer((req, res) => {
    handler(req, res).catch((err: Error) => {
      log.error(`request failed: ${err.message}`)
      reply(res, 500, 'internal error')
    })
  })
  server.requestTimeout = 15_000
  server.headersTimeout = 10_000
  return server
}

export async function startWebsms(opts: WebsmsOptions): Promise<Websms> {
  const log = opts.log
  const now = opts.now ?? Date.now
  let { config, wiring } = await load(opts.confDir, log)
  const host = opts.host ?? '0.0.0.0'

  const sip: SipClient = await openSipClient({
    localAddress: '127.0.0.1',
    localPort: opts.sipSourcePort,
    t1Ms: opts.sipT1Ms,
    timeoutMs: opts.sipTimeoutMs,
  }).catch((err) => {
    throw wrap(`binding the SIP source port 127.0.0.1:${opts.sipSourcePort ?? 0}`, err)
  })

  const deliverToAsterisk = async (job: Extract<Job, { kind: 'deliver' }>): Promise<Outcome> => {
    const fields = { to: job.to, from: job.from, itsp: job.index, bytes: Buffer.byteLength(job.body) }
    let r
    try {
      r = await sip.send(wiring.sip, {
        to: job.to,
        from: job.from,
        fromName: /^\+?\d+$/.test(job.from) ? undefined : job.from,
        body: job.body,
      })
    } catch (err) {
      // A MESSAGE that can't be built never will be; anything else may pass next time.
      if (err instanceof RangeError) return { fail: err.message }
      const why =
        err instanceof SipTimeoutError
          ? `Asterisk did not answer at ${wiring.sip.host}:${wiring.sip.port}`
          : errorMessage(err)
      return { retry: why }
    }
    if (r.status < 300) {
      log.info('text delivered to Asterisk', { ...fields, status: r.status })
      return { done: true }
    }
    const why = `Asterisk answered ${r.status} ${r.reason}`
    // Refusals that a config reload or a restart can cure keep the text; the rest are final.
    return [401, 403, 408, 480].includes(r.status) || r.status >= 500 ? { retry: why } : { fail: why }
  }

  // Aborts posts in flight on close; their texts stay queued for the next start.
  const stopping = new AbortController()

  const sendToItsp = async (job: Extract<Job, { kind: 'send' }>): Promise<Outcome> => {
    const itsp = config.itsps.get(job.index)
    if (!itsp) return { fail: `websms.conf no longer has an ITSP named ${job.index}` }
    const req = outboundRequest(itsp.outbound, job)
    let res: Response
    try {
      res = await fetch(req.url, {
        method: req.method,
        headers: req.headers,
        body: req.body,
        redirect: 'error',
        signal: AbortSignal.any([stopping.signal, AbortSignal.timeout(ITSP_TIMEOUT_MS)]),
      })
    } catch (err) {
      const cause = (err as { cause?: { code?: string; message?: string } }).cause
      return {
        retry: `${itsp.outbound.url.host} unreachable: ${cause?.code ?? cause?.message ?? errorMessage(err)}`,
      }
    }
    const detail = oneLine(sanitizeText(await res.text().catch(() => '')), 120)
    const fields = { itsp: job.index, to: job.to, from: job.from, status: res.status }
    if (res.ok) {
      log.info('text sent to the ITSP', fields)
      return { done: true }
    }
    const why = `the ITSP answered ${res.status}${detail ? `: ${detail}` : ''}`
    return [408, 425, 429].includes(res.status) || res.status >= 500 ? { retry: why } : { fail: why }
  }

  const policy = (lane: string): LanePolicy =>
    lane === ASTERISK_LANE ? { ...ASTERISK_POLICY, ...opts.retry?.asterisk } : { ...ITSP_POLICY, ...opts.retry?.itsp }

  const queue: Queue<Job> = await openQueue<Job>({
    dir: opts.spoolDir,
    log: log.child('websms-queue'),
    now,
    policy,
    deliver: (item: QueueItem<Job>) =>
      item.payload.kind === 'deliver' ? deliverToAsterisk(item.payload) : sendToItsp(item.payload),
    giveUp: async (item, reason) => {
      const job = item.payload
      if (job.kind === 'deliver') {
        log.error('text dropped: Asterisk did not take it', { to: job.to, from: job.from, itsp: job.index, reason })
        return
      }
      log.error('text not sent; telling the sender', { itsp: job.index, to: job.to, from: job.from, reason })
      await toPhones({ kind: 'deliver', to: job.from, from: job.to, body: noticeText(job, reason) })
    },
  }).catch(async (err) => {
    await sip.close()
    throw wrap(`opening the WebSMS queue in ${opts.spoolDir}`, err)
  })

  /** Queues a text for phones, in parts Asterisk can carry. */
  const toPhones = async (job: Extract<Job, { kind: 'deliver' }>) => {
    const parts = splitText(job.body)
    for (const body of parts) await queue.add(ASTERISK_LANE, { ...job, body })
    return parts.length
  }

  const onWebhook = async (req: IncomingMessage, res: ServerResponse) => {
    const [path = ''] = (req.url ?? '').split('?')
    const segs = path.split('/')
    const itsp =
      segs[1] === 'inbound' && (segs.length === 3 || segs.length === 4) ? config.itsps.get(segs[2]!) : undefined
    const inbound = itsp?.inbound
    if (!itsp || !inbound) return reply(res, 404, 'not found')
    const fields = { itsp: itsp.index, client: req.socket.remoteAddress }
    const refuse = (status: number, reason: string, close = false) => {
      log.warn(`webhook refused: ${reason}`, { ...fields, status })
      reply(res, status, reason, close)
    }
    if (req.method !== 'POST') return refuse(405, `method ${req.method}; expected POST`)
    const client = clientAddress(req.socket.remoteAddress ?? '', req.headers['x-forwarded-for'], inbound.trustedProxies)
    if (!client) return refuse(400, 'X-Forwarded-For holds something that is not an address')
    fields.client = client
    if (inbound.allow && !inList(inbound.allow, client)) return refuse(403, `${client} is not in allow`)
    const denied = checkCredentials(inbound.auth, req.headers, segs[3])
    if (denied) return refuse(denied.status, denied.reason)
    const raw = await readBody(req)
    if (raw === 'aborted') return
    if (raw === 'too-large') return refuse(413, `body over ${MAX_BODY_BYTES} bytes`, true)
    const unsigned = checkSignature(inbound.auth, req.headers, raw, now())
    if (unsigned) return refuse(unsigned.status, unsigned.reason)
    const hook = readWebhook(inbound, req.headers['content-type'], raw, wiring.countryCode)
    if (hook.kind === 'rejected') return refuse(hook.status, hook.reason)
    if (hook.kind === 'ignored') {
      log.debug(`webhook acknowledged and ignored: ${hook.reason}`, fields)
      return reply(res, 200)
    }
    const { text } = hook
    let parts
    try {
      parts = await toPhones({ kind: 'deliver', to: text.to, from: text.from, body: text.body, index: itsp.index })
    } catch (err) {
      log.error(`queueing a text failed: ${errorMessage(err)}`, fields)
      return reply(res, 503, 'try again later')
    }
    log.info('text from the ITSP queued for phones', {
      ...fields,
      to: text.to,
      from: text.from,
      bytes: Buffer.byteLength(text.body),
      parts,
    })
    // Empty: 46elks sends a body in the acknowledgement back to the sender as a reply.
    reply(res, 200)
  }

  const onApi = async (req: IncomingMessage, res: ServerResponse) => {
    const refuse = (status: number, reason: string, close = false) => {
      log.warn(`outbound request refused: ${reason}`, { status })
      reply(res, status, reason, close)
    }
    const [path = ''] = (req.url ?? '').split('?')
    if (path !== '/outbound') return reply(res, 404, 'not found')
    if (req.method !== 'POST') return refuse(405, `method ${req.method}; expected POST`)
    const peer = clientAddress(req.socket.remoteAddress ?? '', undefined)
    if (!peer?.startsWith('127.') && peer !== '::1') return refuse(403, `${peer} is not loopback`)
    const raw = await readBody(req)
    if (raw === 'aborted') return
    if (raw === 'too-large') return refuse(413, `body over ${MAX_BODY_BYTES} bytes`, true)
    if (!/^application\/x-www-form-urlencoded\b/i.test(req.headers['content-type'] ?? ''))
      return refuse(415, 'expected application/x-www-form-urlencoded')
    const form = new URLSearchParams(raw.toString('utf8'))
    const [index, rawTo, rawFrom, rawBody] = ['index', 'to', 'from', 'body'].map((k) => form.get(k) ?? undefined)
    if (index === undefined || rawTo === undefined || rawFrom === undefined || rawBody === undefined)
      return refuse(400, 'expected the fields index, to, from and body')
    const from = normalizeNumber(rawFrom, wiring.countryCode)
    if (!from?.startsWith('+')) return refuse(400, `from ${JSON.stringify(rawFrom.slice(0, 40))} is not a phone number`)
    const body = sanitizeText(rawBody)
    const to = normalizeNumber(rawTo, wiring.countryCode)
    const bounce = async (status: number, reason: string) => {
      log.warn(`text not sent: ${reason}`, { itsp: index, to: rawTo.slice(0, 40), from, status })
      await toPhones({
        kind: 'deliver',
        to: from,
        from: to ?? 'WebSMS',
        body: noticeText({ to: to ?? rawTo.slice(0, 40), body }, reason),
      }).catch((err: Error) => log.error(`queueing the notice to ${from} failed: ${err.message}`))
      reply(res, status, reason)
    }
    if (!config.itsps.has(index))
      return bounce(
        404,
        `WebSMS has no ITSP named ${JSON.stringify(index.slice(0, 40))} (the sender's WEBSMS_INDEX) in ${WEBSMS_CONF}`,
      )
    if (!to) return bounce(400, `${JSON.stringify(rawTo.slice(0, 40))} is not a phone number`)
    if (!body.trim()) return refuse(400, 'empty text')
    try {
      await queue.add(`itsp:${index}`, { kind: 'send', index, to, from, body })
    } catch (err) {
      log.error(`queueing a text failed: ${errorMessage(err)}`, { itsp: index })
      return reply(res, 503, 'try again later')
    }
    log.info('text from a phone queued for the ITSP', { itsp: index, to, from, bytes: Buffer.byteLength(body) })
    reply(res, 202)
  }

  const publicServer = httpServer(onWebhook, log)
  let apiServer = httpServer(onApi, log)
  const stopAll = async () => {
    await Promise.all([closeServer(publicServer), closeServer(apiServer)])
    // The queue stops taking up texts at once; what is in flight is cut short and stays queued.
    const drained = queue.close()
    stopping.abort()
    await sip.close()
    await drained
  }
  let publicPort: number
  let apiPort: number
  try {
    if (opts.port !== 0 && opts.port === wiring.apiPort) {
      throw new ConfigError([
        `WEBSMS_PORT and extensions_local.conf [globals] WEBSMS_API_PORT are both ${opts.port}; the public webhook port must differ from the loopback API port`,
      ])
    }
    publicPort = await listen(publicServer, opts.port, host).catch((err) => {
      throw wrap(`listening for webhooks on ${host}:${opts.port} (WEBSMS_PORT)`, err)
    })
    // Loopback only: whoever reaches this port can text out on any user's ITSP account.
    apiPort = await listen(apiServer, wiring.apiPort, '127.0.0.1').catch((err) => {
      throw wrap(`listening for the dial plan on 127.0.0.1:${wiring.apiPort} (WEBSMS_API_PORT)`, err)
    })
  } catch (err) {
    await stopAll()
    throw err
  }

  const announce = () => {
    log.info('WebSMS is listening', {
      webhooks: `${host}:${publicPort}`,
      api: `127.0.0.1:${apiPort}`,
      asterisk: `${wiring.sip.host}:${wiring.sip.port}`,
      itsps: config.itsps.size,
    })
    if (!config.itsps.size) log.warn(`${WEBSMS_CONF} defines no ITSP; WebSMS takes no texts until one is added`)
    for (const itsp of config.itsps.values()) log.info(`[${itsp.index}] ${describe(itsp)}`)
  }
  announce()

  return {
    publicPort,
    get apiPort() {
      return apiPort
    },
    async reload() {
      const next = await load(opts.confDir, log)
      if (next.wiring.apiPort !== apiPort) {
        const server = httpServer(onApi, log)
        const port = await listen(server, next.wiring.apiPort, '127.0.0.1').catch((err) => {
          throw wrap(`listening for the dial plan on 127.0.0.1:${next.wiring.apiPort} (WEBSMS_API_PORT)`, err)
        })
        const old = apiServer
        apiServer = server
        apiPort = port
        await closeServer(old)
      }
      ;({ config, wiring } = next)
      announce()
    },
    flush: () => queue.flush(),
    queued: () => queue.size(),
    close: stopAll,
  }
}
