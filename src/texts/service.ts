// The texts service: texts for users whose phones are offline wait on disk and go out when a phone
// registers.
//
// In: the dial plan's sub_text_term hands every text for a user to 127.0.0.1:TEXT_STORE_PORT
// (extensions_local.conf), whoever sent it: another user, the trunk, the WebSMS service. The text
// is on disk before the answer says `stored`.
// Out: Asterisk's manager interface (AMI, 127.0.0.1:AMI_PORT, an account whose secret is new at
// every start) reports contacts as they register, answer or go away (ContactStatus); each stored
// text goes to the user's reachable phones with MessageSend, with the time it arrived in a Date
// header and the sender as the dial plan showed it.
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import { wrap } from '../base/errors.ts'
import { openAmi, type Ami, type AmiMessage } from '../asterisk/ami.ts'
import { newManagerAccount, writeManagerConf } from '../asterisk/manager-conf.ts'
import { resolveValues } from '../config/conf.ts'
import { readConfTree } from '../config/files.ts'
import { valueOf, type Settings } from '../config/settings.ts'
import type { Service, ServiceContext } from '../service.ts'
import { noticeText } from '../websms/notice.ts'
import { createDeliverer, phoneKey, type Deliverer } from './deliver.ts'
import { openStore, type NewText, type Store, type StoredText } from './store.ts'
import { createServer } from '../base/http.ts'

/** How long after a send a phone that proves unreachable gets the text again: OPTIONS time-out plus slack. */
const CONFIRM_MS = 5000
const MAX_REQUEST_BYTES = 16 * 1024

export interface TextsConfig {
  dir: string
  expiryMs: number
  fanoutMs: number
  maxTexts: number
  maxBytes: number
  amiPort: number
}

export function textsConfig(settings: Settings): TextsConfig {
  const num = (name: string) => Number(valueOf(settings, name))
  return {
    dir: valueOf(settings, 'TEXT_STORE_DIR')!,
    expiryMs: num('TEXT_EXPIRY') * 1000,
    fanoutMs: num('TEXT_FANOUT') * 1000,
    maxTexts: num('TEXT_MAX_PER_USER'),
    maxBytes: num('TEXT_MAX_BYTES_PER_USER'),
    amiPort: num('AMI_PORT'),
  }
}

/** extensions_local.conf [globals] TEXT_STORE_PORT: where the dial plan hands texts over. */
export async function storePort(confDir: string): Promise<number | undefined> {
  const { docs } = await readConfTree(confDir, 'extensions.conf')
  const raw = resolveValues(docs, 'globals', 'TEXT_STORE_PORT').at(-1)?.trim()
  if (!raw) return undefined
  const n = Number(raw)
  if (!/^\d{1,5}$/.test(raw) || n < 1 || n > 65535)
    throw new Error(`extensions_local.conf [globals] TEXT_STORE_PORT must be a port number 1-65535, got \`${raw}\``)
  return n
}

/** A form body's fields as bytes: percent-escapes decoded as bytes, so a body stays as it was. */
export function decodeForm(raw: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>()
  const bytes = (s: string) => {
    const plus = s.replaceAll('+', ' ')
    const parts: number[] = []
    for (let i = 0; i < plus.length; i++) {
      const c = plus.charCodeAt(i)
      if (c === 0x25 && /^[0-9A-Fa-f]{2}$/.test(plus.slice(i + 1, i + 3))) {
        parts.push(parseInt(plus.slice(i + 1, i + 3), 16))
        i += 2
      } else parts.push(c & 0xff)
    }
    return Buffer.from(parts)
  }
  for (const pair of raw.toString('latin1').split('&')) {
    if (!pair) continue
    const eq = pair.indexOf('=')
    const key = bytes(eq < 0 ? pair : pair.slice(0, eq)).toString('utf8')
    out.set(key, bytes(eq < 0 ? '' : pair.slice(eq + 1)))
  }
  return out
}

/** The domain of a From value's URI, for a notice's From; localhost when there is none. */
function domainOf(from: string): string {
  return /@([A-Za-z0-9.-]+)/.exec(from)?.[1] ?? 'localhost'
}

export interface TextsService extends Service {
  /** For tests and the bench: the store and the delivery loop, once started. */
  readonly store: Store | undefined
  readonly deliverer: Deliverer | undefined
  readonly apiPort: number | undefined
}

export interface TextsServiceOptions {
  /** The user Asterisk runs as, when `run` drops root: it must read manager.conf. */
  asteriskOwner?: { uid: number; gid: number }
}

export function textsService(opts: TextsServiceOptions = {}): TextsService {
  let store: Store | undefined
  let deliverer: Deliverer | undefined
  let ami: Ami | undefined
  let server: Server | undefined
  let sweeper: NodeJS.Timeout | undefined
  let apiPort: number | undefined

  const start = async (ctx: ServiceContext) => {
    const log = ctx.log
    const cfg = textsConfig(ctx.settings)
    const port = await storePort(ctx.confDir)
    if (port === undefined) {
      log.warn(
        'extensions_local.conf [globals] TEXT_STORE_PORT is empty: texts go only to phones registered when they arrive',
      )
      return
    }
    const s = await openStore({ dir: cfg.dir, log }).catch((err) => {
      throw wrap(`opening the text store in ${cfg.dir} (TEXT_STORE_DIR)`, err)
    })
    store = s

    // Asterisk reads manager.conf when it starts, or when told to: either way before we log in.
    const account = newManagerAccount(cfg.amiPort)
    const path = await writeManagerConf(ctx.confDir, account, opts.asteriskOwner)
    log.info(`wrote ${path}: the manager interface on 127.0.0.1:${cfg.amiPort}, a new secret`)
    const a = openAmi({ ...account, log, events: 'system', retryMs: { base: 100, max: 1000 } })
    ami = a

    /** Tells a local sender, with a text of its own, that theirs was not delivered. */
    const notify = async (text: StoredText, reason: string) => {
      if (!text.fromUser) {
        log.info('the sender is no local user; nobody to tell', { user: text.user, id: text.id })
        return
      }
      await accept({
        user: text.fromUser,
        to: '',
        from: `<sip:${text.to}@${domainOf(text.from)}>`,
        body: Buffer.from(noticeText({ to: text.to, body: text.body.toString('utf8') }, reason)),
        time: Date.now(),
      })
    }

    const d = createDeliverer({
      store: s,
      log,
      expiryMs: cfg.expiryMs,
      fanoutMs: cfg.fanoutMs,
      confirmMs: CONFIRM_MS,
      notify,
      transport: {
        async send(user, contact, text) {
          await a.action({
            Action: 'MessageSend',
            Destination: `pjsip:${user}/${contact}`,
            From: text.from,
            Base64Body: text.body.toString('base64'),
            // The phone shows when the text was sent, not when it got it. AMI splits variables
            // at commas; a backslash keeps this one.
            Variable: `Date=${new Date(text.time).toUTCString().replaceAll(',', '\\,')}`,
          })
        },
        async qualify(user) {
          await a.action({ Action: 'PJSIPQualify', Endpoint: user })
        },
      },
    })
    deliverer = d

    /** Stores a text; undefined when the user's cap is reached. */
    const accept = async (t: NewText): Promise<StoredText | undefined> => {
      const waiting = s.texts(t.user).filter((x) => !x.deliveredTo.size)
      const bytes = waiting.reduce((n, x) => n + x.text.body.length, 0)
      if (waiting.length + 1 > cfg.maxTexts || bytes + t.body.length > cfg.maxBytes) return undefined
      const stored = await s.add(t)
      d.kick(t.user)
      return stored
    }

    // Every contact, whenever the manager interface comes (back) and when Asterisk has finished
    // booting: it answers the manager before PJSIP has read its contacts back from astdb.
    const refresh = () =>
      void a
        .action({ Action: 'PJSIPShowContacts' }, { list: true })
        .then(({ events }) =>
          d.setContacts(
            events.map((e) => ({
              user: e.Endpoint ?? '',
              uri: e.Uri ?? '',
              status: e.Status ?? 'Unknown',
              phone: phoneKey(e.Uri ?? '', e.CallId),
            })),
          ),
        )
        // No contact at all is an error response, not an empty list.
        .catch(() => d.setContacts([]))
    a.onLogin(refresh)
    a.on('FullyBooted', refresh)
    a.on('ContactStatus', (e: AmiMessage) => {
      const { EndpointName: user, URI: uri, ContactStatus: status } = e
      if (!user || !uri || !status) return
      if (status === 'Removed' || d.knows(user, uri)) return d.contactStatus(user, uri, status)
      // A new contact: which phone it is, by the Call-ID of its registration. Actions are answered
      // in order, so a later event of the same contact is applied after this one.
      void a
        .action({ Action: 'PJSIPShowEndpoint', Endpoint: user }, { list: true })
        .then(
          ({ events }) => events.find((x) => x.Event === 'ContactStatusDetail' && x.URI === uri)?.CallID,
          () => undefined,
        )
        .then((callId) => d.contactStatus(user, uri, status, phoneKey(uri, callId)))
    })
    // An Asterisk that read manager.conf before we wrote it (it starts before this service, or
    // restarted) takes the new one now, and again after every restart.
    const reloadManager = () =>
      void ctx.asterisk
        .rx('module reload manager')
        .catch((err: Error) => log.error(`reloading manager.conf failed: ${err.message}`))
    ctx.asterisk.onReady(reloadManager)
    if (ctx.asterisk.booted()) reloadManager()

    const handle = async (req: IncomingMessage, res: ServerResponse) => {
      const reply = (status: number, text: string) => {
        res.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(text) })
        res.end(text)
      }
      if (req.url !== '/texts' || req.method !== 'POST') return reply(404, 'not found')
      const chunks: Buffer[] = []
      let size = 0
      for await (const c of req as AsyncIterable<Buffer>) {
        size += c.length
        if (size > MAX_REQUEST_BYTES) return reply(413, 'too large')
        chunks.push(c)
      }
      const form = decodeForm(Buffer.concat(chunks))
      const field = (k: string) => form.get(k)?.toString('utf8') ?? ''
      const user = field('user')
      const body = form.get('body')
      if (!user || body === undefined) return reply(400, 'expected the fields user and body')
      const text: NewText = {
        user,
        to: field('to'),
        from: field('from'),
        ...(field('from_user') ? { fromUser: field('from_user') } : {}),
        body,
        time: Date.now(),
      }
      const fields = { user, to: text.to, from: text.fromUser ?? field('from_number'), bytes: body.length }
      let stored: StoredText | undefined
      try {
        stored = await accept(text)
      } catch (err) {
        log.error(`storing a text failed: ${(err as Error).message}`, fields)
        return reply(503, 'not stored')
      }
      if (!stored) {
        log.warn(
          'text refused: the user has as many texts waiting as TEXT_MAX_PER_USER/TEXT_MAX_BYTES_PER_USER allow',
          fields,
        )
        await notify(
          { ...text, id: '' },
          `${text.to || user} has too many texts waiting for a phone to come online`,
        ).catch((err: Error) => log.error(`telling the sender failed: ${err.message}`, fields))
        return reply(200, 'refused')
      }
      log.info('text stored for the phones of a user', { ...fields, id: stored.id })
      reply(200, 'stored')
    }
    const srv = createServer((req, res) => {
      handle(req, res).catch((err: Error) => {
        log.error(`request failed: ${err.message}`)
        if (!res.headersSent) res.writeHead(500).end()
      })
    })
    server = srv
    await new Promise<void>((resolve, reject) => {
      srv.once('error', reject)
      // Loopback only: whoever reaches this port can text any user.
      srv.listen(port, '127.0.0.1', () => {
        srv.off('error', reject)
        resolve()
      })
    }).catch(async (err) => {
      // run does not stop a service that did not start: let go of what is open.
      await Promise.allSettled([a.close(), s.close()])
      throw wrap(`listening for the dial plan on 127.0.0.1:${port} (TEXT_STORE_PORT)`, err)
    })
    apiPort = port
    const every = Math.max(200, Math.min(60_000, cfg.expiryMs / 4, cfg.fanoutMs / 4 || 60_000))
    let sweeping = false
    sweeper = setInterval(() => {
      if (sweeping) return
      sweeping = true
      void d.sweep().finally(() => (sweeping = false))
    }, every)
    log.info('texts service is up', {
      api: `127.0.0.1:${port}`,
      ami: `127.0.0.1:${cfg.amiPort}`,
      dir: cfg.dir,
      waiting: s.size(),
      expiry_s: cfg.expiryMs / 1000,
      fanout_s: cfg.fanoutMs / 1000,
    })
  }

  return {
    name: 'texts',
    get store() {
      return store
    },
    get deliverer() {
      return deliverer
    },
    get apiPort() {
      return apiPort
    },
    start,
    async stop(deadline) {
      clearInterval(sweeper)
      const closing = server ? new Promise<void>((r) => server!.close(() => r())) : undefined
      server?.closeAllConnections()
      await closing
      // Sends in flight finish or are cut off at the deadline; what was not journaled goes again.
      await Promise.race([deliverer?.close(), new Promise((r) => setTimeout(r, Math.max(0, deadline - Date.now())))])
      await ami?.close()
      await store?.close()
    },
  }
}
