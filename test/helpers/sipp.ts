// Runs sipp scenarios (test/fixtures/sipp/*.xml) as phones and trunks against the test Asterisk,
// and hands back every SIP message each one sent and received, for the test to assert on.
import { spawn, type ChildProcess } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync } from 'node:fs'
import { copyFile, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { delimiter, dirname, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Test } from 'tap'
import {
  bindable,
  findAsterisk,
  freePort,
  USERS,
  type AsteriskBinary,
  type TestPbx,
  type UserName,
} from './asterisk.ts'

export const SCENARIOS = resolve(dirname(fileURLToPath(import.meta.url)), '../fixtures/sipp')

/** SIPP_BIN, or sipp on PATH; a string is why there is none, for the skip message. */
export function findSipp(env: NodeJS.ProcessEnv = process.env): { bin: string } | string {
  const bin =
    env.SIPP_BIN ||
    (env.PATH ?? '')
      .split(delimiter)
      .map((d) => join(d, 'sipp'))
      .find((p) => existsSync(p))
  return bin ? { bin } : 'no sipp: install sipp (Debian: sip-tester) or set SIPP_BIN'
}

export interface SipMessage {
  direction: 'sent' | 'received'
  /** `INVITE sip:...` or `SIP/2.0 200 OK`. */
  startLine: string
  /** Request method, or undefined for a response. */
  method: string | undefined
  /** Response status, or undefined for a request. */
  status: number | undefined
  headers: { name: string; value: string }[]
  body: string
  header(name: string): string | undefined
}

export function parseSipMessage(direction: SipMessage['direction'], raw: string): SipMessage {
  const split = raw.indexOf('\r\n\r\n')
  const head = split < 0 ? raw : raw.slice(0, split)
  const body = split < 0 ? '' : raw.slice(split + 4)
  const [startLine = '', ...lines] = head.split('\r\n')
  const headers = lines.map((l) => {
    const colon = l.indexOf(':')
    return { name: l.slice(0, colon).trim(), value: l.slice(colon + 1).trim() }
  })
  const status = /^SIP\/2\.0 (\d{3})/.exec(startLine)
  return {
    direction,
    startLine,
    method: status ? undefined : startLine.split(' ')[0],
    status: status ? Number(status[1]) : undefined,
    headers,
    body,
    header: (name) => headers.find((h) => h.name.toLowerCase() === name.toLowerCase())?.value,
  }
}

/**
 * sipp's -trace_msg file: each message under a dashed line, `UDP message received [N] bytes :` or
 * `UDP message sent (N bytes):` (sipp 3.6), and an empty line. N is taken at its word: bodies keep their bytes.
 */
export function parseMessageTrace(trace: Buffer): SipMessage[] {
  const out: SipMessage[] = []
  const intro = /^\w+ message (sent|received) (?:\[(\d+)\] bytes |\((\d+) bytes\)):\n\n/gm
  const text = trace.toString('latin1')
  for (let m = intro.exec(text); m; m = intro.exec(text)) {
    const start = m.index + m[0].length
    const length = Number(m[2] ?? m[3])
    const raw = trace.subarray(start, start + length).toString('utf8')
    out.push(parseSipMessage(m[1] as SipMessage['direction'], raw))
    intro.lastIndex = start + length
  }
  return out
}

export interface SippOptions {
  /** A file in test/fixtures/sipp. */
  scenario: string
  /** Asterisk's SIP address, host:port. */
  target: string
  /** The local SIP port; a phone's contact or the trunk's address. */
  port: number
  /** The local address, for SIP and media: 127.0.0.1 (the default), ::1, or one in `netns`. */
  host?: string
  /** Scenario keys ([name] in the XML). */
  keys?: Record<string, string>
  /** Credentials for a 401 challenge. */
  auth?: { user: string; password: string }
  /** Calls (dialogs) before sipp exits. */
  calls?: number
  transport?: 'udp' | 'tcp'
  /** media.pcap in the run dir, which scenarios play once a call is up. */
  media?: Uint8Array
  /** Run in this network namespace, one the test made (its address in `host`). */
  netns?: string
  /** sipp's -timeout: how long the whole run may take (default 90s). */
  timeout?: string
  /** New calls a second (sipp's -r; its default is 10). */
  rate?: number
  /** More sipp arguments (a call rate, statistics for a benchmark). */
  args?: string[]
  /** Keep every message for SippResult.messages (default); a benchmark's thousands of calls don't. */
  trace?: boolean
}

export interface SippResult {
  /** 0 when every call went through the scenario to its end. */
  code: number | null
  messages: SipMessage[]
  /** sipp's error log. */
  errors: string
  /** Each message's start line, -> sent, <- received: for a failing assertion's message. */
  summary: string
}

export interface SippRun {
  /** The port its media (media.pcap) comes from. */
  mediaPort: number
  done: Promise<SippResult>
  /** Ends sipp now (a UAS nobody called). */
  stop(): void
}

// A test that fails half-way leaves sipps waiting for calls that won't come; they go with the test.
const running = new Set<ChildProcess>()
let reaping = false

/**
 * Starts sipp. Resolves once it listens on its port, so Asterisk (or another sipp) can reach it;
 * `done` settles when it exits.
 */
export async function startSipp(bin: string, opts: SippOptions): Promise<SippRun> {
  const dir = await mkdtemp(join(tmpdir(), 'pd-sipp-'))
  // Scenarios play media.pcap; sipp looks for it next to the scenario.
  const scenario = join(dir, opts.scenario)
  await copyFile(join(SCENARIOS, opts.scenario), scenario)
  await writeFile(join(dir, 'media.pcap'), opts.media ?? rtpPcap([]))
  const mediaPort = await freePort([2])
  const host = opts.host ?? '127.0.0.1'
  const hostPort = `${host.includes(':') ? `[${host}]` : host}:${opts.port}`
  const keys: Record<string, string> = {
    user: opts.auth?.user ?? 'sipp',
    from: opts.auth?.user ?? 'sipp',
    via: hostPort,
    contact: `sip:${opts.auth?.user ?? 'sipp'}@${hostPort}`,
    expires: '300',
    sdp_host: host,
    sdp_family: host.includes(':') ? 'IP6' : 'IP4',
    video: '',
    header: 'X-Test: sipp',
    body: '',
    to: '',
    ...opts.keys,
  }
  keys.ruri ??= `sip:${keys.to}@${opts.target}`
  keys.to_uri ??= `<sip:${keys.to}@${opts.target.replace(/:\d+$/, '')}>`
  const args = [
    opts.target,
    '-sf',
    scenario,
    '-i',
    host,
    '-p',
    String(opts.port),
    '-mi',
    host,
    '-mp',
    String(mediaPort),
    '-t',
    opts.transport === 'tcp' ? 't1' : 'u1',
    '-m',
    String(opts.calls ?? 1),
    ...(opts.rate ? ['-r', String(opts.rate)] : []),
    '-timeout',
    opts.timeout ?? '90s',
    '-timeout_error',
    '-nostdin',
    ...(opts.trace === false ? [] : ['-trace_msg', '-message_file', join(dir, 'messages.log')]),
    '-trace_err',
    '-error_file',
    join(dir, 'errors.log'),
    ...Object.entries(keys).flatMap(([k, v]) => ['-key', k, v]),
    ...(opts.auth ? ['-au', opts.auth.user, '-ap', opts.auth.password] : []),
    ...(opts.args ?? []),
  ]
  const child = opts.netns
    ? spawn('ip', ['netns', 'exec', opts.netns, bin, ...args], { cwd: dir, stdio: 'ignore' })
    : spawn(bin, args, { cwd: dir, stdio: 'ignore' })
  if (!reaping) process.once('exit', () => running.forEach((c) => c.kill('SIGKILL')))
  reaping = true
  running.add(child)
  const exited = new Promise<number | null>((done) => child.once('exit', (code) => done(code)))
  void exited.then(() => running.delete(child))
  const done = exited.then(async (code) => {
    const messages = parseMessageTrace(await readFile(join(dir, 'messages.log')).catch(() => Buffer.alloc(0)))
    const errors = await readFile(join(dir, 'errors.log'), 'utf8').catch(() => '')
    await rm(dir, { recursive: true, force: true })
    const summary = messages.map((m) => `${m.direction === 'sent' ? '->' : '<-'} ${m.startLine}`).join('\n')
    return { code, messages, errors, summary }
  })
  // Listening: its port is taken. A sipp that exits first (bad scenario, port in use) ends the wait.
  let gone = false
  void exited.then(() => (gone = true))
  // (In a namespace of its own nothing else takes its port, and what it reaches it calls first.)
  for (
    const deadline = Date.now() + 10_000;
    !opts.netns && !gone && (await bindable(opts.port, opts.transport ?? 'udp', host));
  ) {
    if (Date.now() > deadline) throw new Error(`sipp ${opts.scenario} did not listen on ${opts.port} within 10 s`)
    await new Promise((r) => setTimeout(r, 20))
  }
  return { mediaPort, done, stop: () => void child.kill('SIGTERM') }
}

/** The final (non-1xx) responses received to requests of `method`, in order. */
export function finalResponses(r: SippResult, method: string): number[] {
  return r.messages
    .filter((m) => m.direction === 'received' && m.header('CSeq')?.endsWith(` ${method}`))
    .flatMap((m) => (m.status !== undefined && m.status >= 200 ? [m.status] : []))
}

/** The requests of `method` received. */
export function requests(r: SippResult, method: string): SipMessage[] {
  return r.messages.filter((m) => m.direction === 'received' && m.method === method)
}

/** The fields of a Digest challenge or answer header: realm="x", nc=00000001 ... */
export function digestFields(header: string | undefined): Record<string, string> {
  const out: Record<string, string> = {}
  for (const m of (header ?? '').replace(/^Digest\s+/i, '').matchAll(/(\w+)=(?:"([^"]*)"|([^,\s]+))/g))
    out[m[1]!.toLowerCase()] = m[2] ?? m[3] ?? ''
  return out
}

/**
 * Whether `request` (received by sipp) answers the digest challenge in its Authorization or
 * Proxy-Authorization header with `user` and `password`, by RFC 7616 (MD5 or SHA-256, qop auth
 * or none), and with the algorithm asked for.
 */
export function digestAnswers(request: SipMessage, user: string, password: string, algorithm: string): boolean {
  const f = digestFields(request.header('Authorization') ?? request.header('Proxy-Authorization'))
  const name = { MD5: 'md5', 'SHA-256': 'sha256' }[algorithm]
  if (!name || (f.algorithm ?? 'MD5').toUpperCase() !== algorithm) return false
  const h = (s: string) => createHash(name).update(s).digest('hex')
  const ha1 = h(`${user}:${f.realm}:${password}`)
  const ha2 = h(`${request.method}:${f.uri}`)
  const expected =
    f.qop === 'auth' ? h(`${ha1}:${f.nonce}:${f.nc}:${f.cnonce}:auth:${ha2}`) : h(`${ha1}:${f.nonce}:${ha2}`)
  return f.username === user && f.response === expected
}

/** Runs a scenario to its end. */
export async function runSipp(bin: string, opts: SippOptions): Promise<SippResult> {
  return (await startSipp(bin, opts)).done
}

/** Asterisk and sipp, or why a suite that needs both is skipped. */
export function findTools(): { asterisk: AsteriskBinary; sipp: string } | string {
  const asterisk = findAsterisk()
  if (typeof asterisk === 'string') return asterisk
  const sipp = findSipp()
  return typeof sipp === 'string' ? sipp : { asterisk, sipp: sipp.bin }
}

/** The number the trunk's calls and texts come from. */
export const TRUNK_CALLER = '+46705550199'

type RunOptions = Omit<SippOptions, 'target'>

/** Phones and the trunk of the test PBX, as sipp plays them. */
export interface Driver {
  run(opts: RunOptions): Promise<SippResult>
  /** Starts sipp (a phone or the trunk waiting for calls or texts); see startSipp. */
  start(opts: RunOptions): Promise<SippRun>
  auth(user: UserName): { user: string; password: string }
  /** Registers a phone of `user` from a fresh port, unregistered when `t` ends. Its port. */
  phone(t: Test, user: UserName, keys?: Record<string, string>): Promise<number>
  /** A call (uac-call.xml) from a user, from a fresh port unless given, or from the trunk. */
  call(from: UserName | 'trunk', to: string, opts?: Partial<RunOptions>): Promise<SippResult>
  /** A text (uac-message.xml), likewise. */
  text(from: UserName | 'trunk', to: string, body: string, opts?: Partial<RunOptions>): Promise<SippResult>
}

/**
 * `host`: the address family the phones use, 127.0.0.1 or ::1 (the trunk stays on 127.0.0.1). A
 * PBX in a container is known by its published address alone.
 */
export function driver(
  bin: string,
  pbx: Pick<TestPbx, 'target' | 'trunkPort'> & Partial<Pick<TestPbx, 'sipPort' | 'websmsPort'>>,
  host = '127.0.0.1',
): Driver {
  const target = host.includes(':') ? `[${host}]:${pbx.sipPort}` : pbx.target
  // The trunk and the WebSMS service are known by their IPv4 address and port.
  const family = (opts: RunOptions): SippOptions =>
    opts.port === pbx.trunkPort || opts.port === pbx.websmsPort
      ? { ...opts, target: pbx.target }
      : { host, ...opts, target }
  const run = (opts: RunOptions) => runSipp(bin, family(opts))
  const auth = (user: UserName) => ({ user, password: USERS[user].password })
  const send = async (
    scenario: string,
    from: UserName | 'trunk',
    keys: Record<string, string>,
    opts: Partial<RunOptions>,
  ) =>
    from === 'trunk'
      ? run({ scenario, port: pbx.trunkPort, ...opts, keys: { from: TRUNK_CALLER, ...keys, ...opts.keys } })
      : run({
          scenario,
          port: opts.port ?? (await freePort()),
          auth: auth(from),
          ...opts,
          keys: { from, ...keys, ...opts.keys },
        })
  return {
    run,
    start: (opts) => startSipp(bin, family(opts)),
    auth,
    phone: async (t, user, keys = {}) => {
      const port = await freePort()
      const r = await run({ scenario: 'uac-register.xml', port, auth: auth(user), keys })
      t.equal(
        finalResponses(r, 'REGISTER').at(-1),
        200,
        `${user}'s phone on ${port} registers\n${r.summary}\n${r.errors}`,
      )
      t.teardown(() => run({ scenario: 'uac-register.xml', port, auth: auth(user), keys: { ...keys, expires: '0' } }))
      return port
    },
    call: (from, to, opts = {}) => send('uac-call.xml', from, { to }, opts),
    text: (from, to, body, opts = {}) => send('uac-message.xml', from, { to, body }, opts),
  }
}

export interface RtpPacket {
  payloadType: number
  payload: Uint8Array
  marker?: boolean
  /** RTP timestamp step from the previous packet, in samples (default 160: 20 ms). */
  step?: number
}

/**
 * A pcap of RTP packets 20 ms apart, for sipp's play_pcap_audio, which sends each packet's UDP
 * payload to the peer's media address at the recorded pace. Ethernet/IPv4/UDP framing; sipp
 * ignores the addresses.
 */
export function rtpPcap(packets: RtpPacket[]): Uint8Array {
  const header = Buffer.alloc(24)
  header.writeUInt32LE(0xa1b2c3d4, 0)
  header.writeUInt16LE(2, 4)
  header.writeUInt16LE(4, 6)
  header.writeUInt32LE(65535, 16)
  header.writeUInt32LE(1, 20)
  const parts: Buffer[] = [header]
  let usec = 0
  let ts = 0
  packets.forEach((p, seq) => {
    usec += 20_000
    ts += p.step ?? 160
    const rtp = Buffer.alloc(12 + p.payload.length)
    rtp[0] = 0x80
    rtp[1] = (p.marker ? 0x80 : 0) | p.payloadType
    rtp.writeUInt16BE(seq & 0xffff, 2)
    rtp.writeUInt32BE(ts >>> 0, 4)
    rtp.writeUInt32BE(0x5eed1e55, 8)
    Buffer.from(p.payload).copy(rtp, 12)
    const udp = Buffer.alloc(8)
    udp.writeUInt16BE(40000, 0)
    udp.writeUInt16BE(40002, 2)
    udp.writeUInt16BE(8 + rtp.length, 4)
    const ip = Buffer.alloc(20)
    ip[0] = 0x45
    ip.writeUInt16BE(20 + udp.length + rtp.length, 2)
    ip[8] = 64
    ip[9] = 17
    ip.set([127, 0, 0, 1], 12)
    ip.set([127, 0, 0, 1], 16)
    const eth = Buffer.alloc(14)
    eth.writeUInt16BE(0x0800, 12)
    const frame = Buffer.concat([eth, ip, udp, rtp])
    const rec = Buffer.alloc(16)
    rec.writeUInt32LE(Math.floor(usec / 1e6), 0)
    rec.writeUInt32LE(usec % 1e6, 4)
    rec.writeUInt32LE(frame.length, 8)
    rec.writeUInt32LE(frame.length, 12)
    parts.push(rec, frame)
  })
  return Buffer.concat(parts)
}

/** G.711 A-law of one 16-bit sample. */
function alaw(sample: number): number {
  let pcm = sample >> 3
  let mask = 0xd5
  if (pcm < 0) {
    mask = 0x55
    pcm = -pcm - 1
  }
  const ends = [0x1f, 0x3f, 0x7f, 0xff, 0x1ff, 0x3ff, 0x7ff, 0xfff]
  const seg = ends.findIndex((e) => pcm <= e)
  if (seg < 0) return 0x7f ^ mask
  return ((seg << 4) | ((pcm >> (seg < 2 ? 1 : seg)) & 0x0f)) ^ mask
}

/** A 440 Hz tone, PCMA (payload type 8), 20 ms packets. */
export function tone(seconds: number): RtpPacket[] {
  return Array.from({ length: Math.round(seconds * 50) }, (_, i) => ({
    payloadType: 8,
    payload: Uint8Array.from({ length: 160 }, (_, j) =>
      alaw(Math.round(8000 * Math.sin((2 * Math.PI * 440 * (i * 160 + j)) / 8000))),
    ),
  }))
}

/** A key press as RFC 4733 telephone-events (payload type 101): 100 ms, its end sent three times. */
export function dtmf(key: string): RtpPacket[] {
  const event = '0123456789*#'.indexOf(key)
  if (event < 0) throw new RangeError(`dtmf: expected one of 0-9 * #, got ${JSON.stringify(key)}`)
  const packet = (duration: number, end: boolean, first: boolean): RtpPacket => ({
    payloadType: 101,
    marker: first,
    step: first ? 160 : 0,
    payload: Uint8Array.of(event, (end ? 0x80 : 0) | 10, duration >> 8, duration & 0xff),
  })
  return [
    packet(160, false, true),
    packet(320, false, false),
    packet(480, false, false),
    packet(800, true, false),
    packet(800, true, false),
    packet(800, true, false),
  ]
}

/** Silence, sent as a phone sends it: a packet every 20 ms. */
export function silence(seconds: number): RtpPacket[] {
  return Array.from({ length: Math.round(seconds * 50) }, () => ({
    payloadType: 8,
    payload: new Uint8Array(160).fill(0xd5),
  }))
}
