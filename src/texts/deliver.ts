// Which stored text goes to which phone, and when. Phones are contacts (URIs) of a user's endpoint,
// as Asterisk reports them; the texts wait in the store.
//
// The rule for several phones: a text goes once to each phone of its user that is reachable from
// the time it arrives until `fanoutMs` after the first phone got it (or until it expires, when no
// phone ever did). So a user's phones that come online together all get what waited, a phone that
// comes online soon after gets it too, and a text is not kept for days after it was read.
// A phone is known by the Call-ID of its registrations, which a phone keeps while it runs (RFC 3261
// 10.2) even when it changes networks and so registers under a new contact URI: it does not get
// the same texts again. A contact whose Call-ID is unknown counts as a phone of its own.
//
// Delivery over Asterisk can't report a phone's answer (MessageSend does not wait for one), so a
// phone counts as having a text once Asterisk sent it there, unless the contact turns out to be
// unreachable within `confirmMs` afterwards: the endpoint is qualified (OPTIONS) after each round
// of sends, and a phone that does not answer gets the texts again when it next is reachable.
import type { Logger } from '../base/log.ts'
import type { Store, StoredText, TextState } from './store.ts'

export interface Transport {
  /** Resolves once Asterisk sent the text to that contact; rejects when it could not. */
  send(user: string, contact: string, text: StoredText): Promise<void>
  /** Asks Asterisk to check the user's contacts now (OPTIONS), so an unreachable one is reported. */
  qualify(user: string): Promise<void>
}

/**
 * Asterisk's contact status label, as in ContactStatus events and PJSIPShowContacts: Reachable,
 * Unreachable, NonQualified (just registered, or qualify is off), Unknown, Removed, Updated.
 */
export type ContactStatus = string

export interface DelivererOptions {
  store: Store
  transport: Transport
  log: Logger
  expiryMs: number
  fanoutMs: number
  confirmMs: number
  /** Tells the sender a text was not delivered (it expired). */
  notify(text: StoredText, reason: string): Promise<void>
  now?: () => number
}

export interface Contact {
  user: string
  uri: string
  status: ContactStatus
  /** Which phone it is (phoneKey); the URI when not known. */
  phone?: string
}

/** What deliveries to a contact are recorded under: its phone's Call-ID, else its URI. */
export function phoneKey(uri: string, callId?: string): string {
  return callId ? `call-id:${callId}` : uri
}

export interface Deliverer {
  /** Every contact Asterisk has, after a (re)connect. */
  setContacts(contacts: Contact[]): void
  /** `phone` may be left out for a contact it knows. */
  contactStatus(user: string, uri: string, status: ContactStatus, phone?: string): void
  knows(user: string, uri: string): boolean
  /** Delivers what the user's reachable phones don't have yet. */
  kick(user: string): void
  /** Removes texts that are done with, tells senders of expired ones. */
  sweep(): Promise<void>
  /** Resolves when no delivery is running. */
  idle(): Promise<void>
  close(): Promise<void>
}

/** Whether a contact in this state may get texts. A contact just registered is taken at its word. */
export function usable(status: ContactStatus): boolean {
  return status !== 'Unreachable' && status !== 'Removed'
}

/** What becomes of a text now: deliver it on, drop it as expired, or drop it as done. Pure. */
export function fate(
  s: TextState,
  now: number,
  policy: { expiryMs: number; fanoutMs: number; confirmMs: number },
): 'keep' | 'expired' | 'done' {
  if (!s.deliveredTo.size) return now - s.text.time >= policy.expiryMs ? 'expired' : 'keep'
  const times = [...s.deliveredTo.values()]
  const first = Math.min(...times)
  const last = Math.max(...times)
  return now >= first + policy.fanoutMs && now >= last + policy.confirmMs ? 'done' : 'keep'
}

export function createDeliverer(opts: DelivererOptions): Deliverer {
  const { store, transport, log } = opts
  const now = opts.now ?? Date.now
  /** Per user, per contact URI; the most recently reported last. */
  const contacts = new Map<string, Map<string, { status: ContactStatus; phone: string }>>()
  /** Sends not yet confirmed, per contact URI: undone if the contact proves unreachable. */
  const recent = new Map<string, Array<{ id: string; phone: string; at: number }>>()
  const running = new Map<string, Promise<void>>()
  const again = new Set<string>()
  let closed = false

  const userContacts = (user: string) => {
    let m = contacts.get(user)
    if (!m) contacts.set(user, (m = new Map()))
    return m
  }

  const round = async (user: string) => {
    // One contact per phone: the one it reported last (a phone that changed networks may leave
    // its old contact behind until that expires).
    const byPhone = new Map<string, string>()
    for (const [uri, c] of contacts.get(user) ?? []) if (usable(c.status)) byPhone.set(c.phone, uri)
    if (!byPhone.size) return
    const t = now()
    const texts = store.texts(user).filter((s) => fate(s, t, opts) === 'keep')
    let sent = 0
    await Promise.all(
      [...byPhone].map(async ([phone, uri]) => {
        const due = texts.filter((s) => !s.deliveredTo.has(phone))
        if (!due.length) return
        // All sends to a contact are issued at once: Asterisk's manager session and its MESSAGE
        // serializer keep their order, so they arrive in the order the texts came.
        const results = await Promise.allSettled(
          due.map(async (s) => {
            await transport.send(user, uri, s.text)
            const at = now()
            const list = recent.get(uri) ?? []
            list.push({ id: s.text.id, phone, at })
            recent.set(uri, list)
            await store.delivered(s.text.id, phone, at)
            sent++
          }),
        )
        const failed = results.filter((r) => r.status === 'rejected')
        log.info(`sent ${due.length - failed.length} stored text(s) to a phone`, {
          user,
          contact: uri,
          phone: phone === uri ? undefined : phone,
          failed: failed.length || undefined,
          reason: failed[0] ? (failed[0].reason as Error).message : undefined,
        })
      }),
    )
    if (sent) {
      await transport
        .qualify(user)
        .catch((err: Error) => log.warn(`qualifying ${user}'s phones failed: ${err.message}`, { user }))
    }
  }

  const kick = (user: string) => {
    if (closed) return
    if (running.has(user)) {
      again.add(user)
      return
    }
    const p = (async () => {
      do {
        again.delete(user)
        try {
          await round(user)
        } catch (err) {
          log.error(`delivering stored texts failed: ${(err as Error).message}`, { user })
        }
      } while (again.has(user) && !closed)
    })().finally(() => running.delete(user))
    running.set(user, p)
  }

  const undo = (user: string, uri: string) => {
    const cutoff = now() - opts.confirmMs
    const list = (recent.get(uri) ?? []).filter((r) => r.at >= cutoff)
    recent.delete(uri)
    if (!list.length) return
    log.warn(`a phone did not answer after texts were sent to it; they wait for it to be reachable`, {
      user,
      contact: uri,
      texts: list.length,
    })
    for (const r of list)
      void store.undelivered(r.id, r.phone).catch((err: Error) => log.error(`journal write failed: ${err.message}`))
  }

  return {
    setContacts(list) {
      contacts.clear()
      for (const c of list) userContacts(c.user).set(c.uri, { status: c.status, phone: c.phone ?? c.uri })
      log.info('contacts from Asterisk', {
        contacts: list.length,
        reachable: list.filter((c) => usable(c.status)).length,
      })
      for (const user of store.users()) kick(user)
    },
    contactStatus(user, uri, status, phone) {
      const m = userContacts(user)
      const was = m.get(uri)
      m.delete(uri)
      if (status !== 'Removed') m.set(uri, { status, phone: phone ?? was?.phone ?? uri })
      log.debug('contact status', { user, contact: uri, status, was: was?.status })
      if (status === 'Unreachable') undo(user, uri)
      if (usable(status) && store.texts(user).length) kick(user)
    },
    knows: (user, uri) => contacts.get(user)?.has(uri) ?? false,
    kick,
    async sweep() {
      const t = now()
      for (const user of store.users()) {
        for (const s of [...store.texts(user)]) {
          const f = fate(s, t, opts)
          if (f === 'keep') continue
          if (f === 'expired') {
            const days = Math.round((opts.expiryMs / 86_400_000) * 10) / 10
            log.warn('stored text expired: no phone of the user was reachable; telling the sender', {
              user,
              from: s.text.fromUser,
              id: s.text.id,
            })
            await opts
              .notify(
                s.text,
                `no phone of theirs was online for ${days >= 1 ? `${days} days` : `${Math.round(opts.expiryMs / 1000)} s`}`,
              )
              .catch((err: Error) => log.error(`telling the sender failed: ${err.message}`, { id: s.text.id }))
          }
          await store.remove(s.text.id)
        }
      }
    },
    idle: async () => {
      while (running.size) await Promise.allSettled([...running.values()])
    },
    async close() {
      closed = true
      await Promise.allSettled([...running.values()])
    },
  }
}
