// A small client for Asterisk's manager interface (AMI) over TCP: log in, send actions matched to
// their responses by ActionID (list actions gather their events), subscribe to events, and log in
// again whenever Asterisk comes back after a restart. Keys and values are single lines; a value
// that would start a new line is refused before anything is sent.
import { connect, type Socket } from 'node:net'
import type { Logger } from '../base/log.ts'

/** One AMI message: its key/value lines, in order. Repeated keys keep the last value. */
export type AmiMessage = Record<string, string>

export interface AmiResponse {
  /** The response itself (Response: Success ...). */
  response: AmiMessage
  /** For list actions: the events that carried the list, without the closing ...Complete event. */
  events: AmiMessage[]
}

export class AmiError extends Error {
  readonly action: string
  readonly response?: AmiMessage
  constructor(action: string, detail: string, response?: AmiMessage) {
    super(`AMI action ${action}: ${detail}`)
    this.name = 'AmiError'
    this.action = action
    this.response = response
  }
}

export interface AmiOptions {
  host: string
  port: number
  username: string
  /** Never logged. */
  secret: string
  log: Logger
  /** Event classes to receive (Login's Events), default all the account may read. */
  events?: string
  /** Reconnect delay: first, then doubling up to max. Default 200 ms, 5 s. */
  retryMs?: { base: number; max: number }
  /** How long an action may wait for its response; default 10 s. */
  timeoutMs?: number
}

export interface Ami {
  /** Sends an action; `list`: gather its events until the one that says EventList: Complete. */
  action(fields: Record<string, string>, opts?: { list?: boolean }): Promise<AmiResponse>
  /** Events by name, '*' for all. */
  on(event: string, listener: (event: AmiMessage) => void): void
  /** Called after each successful login: the first and every one after a reconnect. */
  onLogin(listener: () => void): void
  loggedIn(): boolean
  /** Resolves at the next login (at once when logged in); rejects once closed. */
  ready(): Promise<void>
  close(): Promise<void>
}

interface Pending {
  name: string
  list: boolean
  events: AmiMessage[]
  response?: AmiMessage
  resolve(r: AmiResponse): void
  reject(err: Error): void
  timer: NodeJS.Timeout
}

const LINE_BREAK = /[\r\n]/

/** An action's wire form; refuses keys and values that would end their line. */
export function formatAction(fields: Record<string, string>): string {
  let out = ''
  for (const [key, value] of Object.entries(fields)) {
    if (!/^[A-Za-z0-9_()-]+$/.test(key))
      throw new RangeError(`an AMI key must be a plain word, got ${JSON.stringify(key)}`)
    if (LINE_BREAK.test(value)) throw new RangeError(`the AMI value of ${key} must be one line`)
    out += `${key}: ${value}\r\n`
  }
  return `${out}\r\n`
}

/** Splits a stream into messages; returns them and the unfinished rest. */
export function parseMessages(buffer: string): { messages: AmiMessage[]; rest: string } {
  const messages: AmiMessage[] = []
  let start = 0
  for (let end = buffer.indexOf('\r\n\r\n'); end >= 0; end = buffer.indexOf('\r\n\r\n', start)) {
    const msg: AmiMessage = {}
    for (const line of buffer.slice(start, end).split('\r\n')) {
      const colon = line.indexOf(':')
      if (colon > 0) msg[line.slice(0, colon)] = line.slice(colon + 1).trim()
    }
    if (Object.keys(msg).length) messages.push(msg)
    start = end + 4
  }
  return { messages, rest: buffer.slice(start) }
}

export function openAmi(opts: AmiOptions): Ami {
  const log = opts.log
  const retry = opts.retryMs ?? { base: 200, max: 5000 }
  const timeoutMs = opts.timeoutMs ?? 10_000
  const listeners = new Map<string, Set<(e: AmiMessage) => void>>()
  const loginListeners = new Set<() => void>()
  const pending = new Map<string, Pending>()
  let readyWaiters: Array<{ resolve: () => void; reject: (e: Error) => void }> = []
  let socket: Socket | undefined
  let logged = false
  let closed = false
  let seq = 0
  let delay = retry.base
  let retryTimer: NodeJS.Timeout | undefined
  let everConnected = false
  let unreachableSaid = false

  const failAll = (why: string) => {
    for (const [id, p] of pending) {
      clearTimeout(p.timer)
      pending.delete(id)
      p.reject(new AmiError(p.name, why))
    }
  }

  const dispatch = (msg: AmiMessage) => {
    const id = msg.ActionID
    const p = id === undefined ? undefined : pending.get(id)
    if (p) {
      if (msg.Response !== undefined) {
        p.response = msg
        // A list's events follow its Success; anything else is complete with the response.
        if (!p.list || msg.Response !== 'Success') settle(id!, p)
        return
      }
      if (p.list && msg.Event !== undefined) {
        if (msg.EventList === 'Complete') return settle(id!, p)
        p.events.push(msg)
        return
      }
    }
    if (msg.Event !== undefined) {
      for (const key of [msg.Event, '*']) for (const l of listeners.get(key) ?? []) l(msg)
    }
  }

  const settle = (id: string, p: Pending) => {
    clearTimeout(p.timer)
    pending.delete(id)
    const r = p.response!
    if (r.Response === 'Success' || r.Response === 'Follows') p.resolve({ response: r, events: p.events })
    else p.reject(new AmiError(p.name, r.Message ?? `response ${r.Response}`, r))
  }

  const send = (s: Socket, fields: Record<string, string>, list: boolean): Promise<AmiResponse> => {
    const name = fields.Action ?? '?'
    const id = String(++seq)
    const wire = formatAction({ ...fields, ActionID: id })
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        pending.delete(id)
        reject(new AmiError(name, `no response within ${timeoutMs} ms`))
      }, timeoutMs)
      pending.set(id, { name, list, events: [], resolve, reject, timer })
      s.write(wire)
    })
  }

  const scheduleReconnect = () => {
    if (closed || retryTimer) return
    retryTimer = setTimeout(() => {
      retryTimer = undefined
      start()
    }, delay)
    delay = Math.min(delay * 2, retry.max)
  }

  const start = () => {
    if (closed) return
    const s = connect({ host: opts.host, port: opts.port })
    socket = s
    let buffer = ''
    let banner = false
    s.setEncoding('utf8')
    s.setNoDelay(true)
    s.on('data', (chunk: string) => {
      buffer += chunk
      if (!banner) {
        const eol = buffer.indexOf('\r\n')
        if (eol < 0) return
        banner = true
        buffer = buffer.slice(eol + 2)
        void login(s)
      }
      const { messages, rest } = parseMessages(buffer)
      buffer = rest
      for (const m of messages) dispatch(m)
    })
    let error: string | undefined
    s.on('error', (err: NodeJS.ErrnoException) => (error = err.code ?? err.message))
    s.on('close', () => {
      if (socket === s) socket = undefined
      const was = logged
      logged = false
      failAll('the connection to Asterisk closed')
      if (closed) return
      if (was) log.warn('AMI connection lost; reconnecting', { host: opts.host, port: opts.port })
      // Once per outage: Asterisk still booting is normal, one that never listens is worth a line.
      else if (!unreachableSaid && delay >= retry.max) {
        unreachableSaid = true
        log.warn('the manager interface does not answer yet; still trying', {
          host: opts.host,
          port: opts.port,
          error,
        })
      }
      scheduleReconnect()
    })
  }

  const login = async (s: Socket) => {
    try {
      await send(
        s,
        {
          Action: 'Login',
          Username: opts.username,
          Secret: opts.secret,
          ...(opts.events ? { Events: opts.events } : {}),
        },
        false,
      )
    } catch (err) {
      log.error(`AMI login as ${opts.username} failed: ${(err as Error).message}`)
      s.destroy()
      return
    }
    logged = true
    delay = retry.base
    unreachableSaid = false
    log.info(everConnected ? 'AMI logged in again' : 'AMI logged in', { host: opts.host, port: opts.port })
    everConnected = true
    const waiters = readyWaiters
    readyWaiters = []
    for (const w of waiters) w.resolve()
    for (const l of loginListeners) l()
  }

  start()

  return {
    action(fields, o = {}) {
      if (closed) return Promise.reject(new AmiError(fields.Action ?? '?', 'the client is closed'))
      if (!socket || !logged) return Promise.reject(new AmiError(fields.Action ?? '?', 'not connected to Asterisk'))
      return send(socket, fields, o.list ?? false)
    },
    on(event, listener) {
      let set = listeners.get(event)
      if (!set) listeners.set(event, (set = new Set()))
      set.add(listener)
    },
    onLogin(listener) {
      loginListeners.add(listener)
    },
    loggedIn: () => logged,
    ready: () =>
      closed
        ? Promise.reject(new Error('AMI client closed'))
        : logged
          ? Promise.resolve()
          : new Promise((resolve, reject) => readyWaiters.push({ resolve, reject })),
    async close() {
      closed = true
      clearTimeout(retryTimer)
      for (const w of readyWaiters) w.reject(new Error('AMI client closed'))
      readyWaiters = []
      const s = socket
      if (!s) return failAll('the client is closed')
      if (logged) {
        // Asterisk ends the session on Logoff; a socket that doesn't close soon is dropped.
        s.write(formatAction({ Action: 'Logoff', ActionID: String(++seq) }))
        s.end()
      } else s.destroy()
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => s.destroy(), 1000)
        s.once('close', () => {
          clearTimeout(t)
          resolve()
        })
      })
      failAll('the client is closed')
    },
  }
}
