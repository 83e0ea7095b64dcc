// A real Asterisk on a temporary copy of rootfs/etc/asterisk, for integration tests: its
// directories moved to a scratch dir, its transports on loopback test ports, run in the
// foreground as the current user. Found only through ASTERISK_BIN or `asterisk` on PATH.
import { execFile } from 'node:child_process'
import { createSocket } from 'node:dgram'
import { existsSync, readdirSync } from 'node:fs'
import { chmod, lstat, mkdir, mkdtemp, readdir, readFile, readlink, rm, symlink, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { delimiter, dirname, isAbsolute, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'
import {
  rx as remote,
  spawnAsterisk,
  waitFullyBooted,
  type AsteriskTarget,
  type Child,
} from '../../src/asterisk/process.ts'
import { parseConf, printConf, setValue, type ConfDoc } from '../../src/config/conf.ts'

const HERE = dirname(fileURLToPath(import.meta.url))
export const SHIPPED_CONFIG = resolve(HERE, '../../rootfs/etc/asterisk')
const SCENARIO_FIXTURES = resolve(HERE, '../fixtures/sipp')

export interface AsteriskBinary {
  bin: string
  /**
   * A root the binary runs from (see scripts/asterisk-root.sh): then its modules and data are the
   * root's, not the compiled-in paths.
   */
  root?: { dir: string; moddir: string; datadir: string }
}

/** ASTERISK_BIN, or `asterisk` on PATH; a string is why there is none, for the skip message. */
export function findAsterisk(env: NodeJS.ProcessEnv = process.env): AsteriskBinary | string {
  const bin =
    env.ASTERISK_BIN ||
    (env.PATH ?? '')
      .split(delimiter)
      .map((d) => join(d, 'asterisk'))
      .find((p) => existsSync(p))
  if (!bin) return 'no Asterisk: set ASTERISK_BIN (scripts/asterisk-root.sh makes one) or put asterisk on PATH'
  if (!existsSync(bin)) return `no Asterisk: ASTERISK_BIN is ${bin}, which does not exist`
  const top = dirname(bin)
  const lib = join(top, 'usr/lib')
  const arch = existsSync(lib) ? readdirSync(lib).find((d) => existsSync(join(lib, d, 'asterisk/modules'))) : undefined
  if (arch === undefined) return { bin }
  return {
    bin,
    root: { dir: top, moddir: join(lib, arch, 'asterisk/modules'), datadir: join(top, 'usr/share/asterisk') },
  }
}

const handedOut = new Set<number>()

/**
 * A port free for both UDP and TCP on 127.0.0.1 (SIP listens on both), and not handed out before
 * in this process: a trunk's port is reserved long before its sipp binds it. `also`: offsets of
 * ports that must be free with it (sipp's video port is its media port + 2).
 */
export async function freePort(also: number[] = []): Promise<number> {
  for (;;) {
    const port = await new Promise<number>((done, fail) => {
      const server = createServer()
      server.once('error', fail)
      server.listen(0, '127.0.0.1', () => {
        const addr = server.address()
        server.close(() => (addr && typeof addr === 'object' ? done(addr.port) : fail(new Error('no port'))))
      })
    })
    const ports = [port, ...also.map((o) => port + o)]
    if (ports.some((p) => handedOut.has(p))) continue
    const free = await Promise.all(ports.flatMap((p) => [bindable(p, 'udp'), bindable(p, 'tcp')]))
    if (free.every(Boolean)) {
      for (const p of ports) handedOut.add(p)
      return port
    }
  }
}

/** Whether nothing holds `port` on `host` (a loopback address) for this transport. */
export function bindable(port: number, transport: 'udp' | 'tcp', host = '127.0.0.1'): Promise<boolean> {
  return new Promise((done) => {
    if (transport === 'udp') {
      const s = createSocket('udp4')
      s.once('error', () => done(false))
      s.bind(port, host, () => s.close(() => done(true)))
    } else {
      const server = createServer()
      server.once('error', () => done(false))
      server.listen(port, host, () => server.close(() => done(true)))
    }
  })
}

/**
 * A data dir for Asterisk that sees the root's sounds. Debian links sounds/en to
 * /etc/alternatives/..., an absolute path that means the root's file only inside the root, so
 * each such link is followed within the root.
 */
async function linkDataDir(root: { dir: string; datadir: string }, dest: string): Promise<void> {
  await mkdir(join(dest, 'sounds'), { recursive: true })
  for (const name of await readdir(root.datadir)) {
    if (name !== 'sounds') await symlink(join(root.datadir, name), join(dest, name))
  }
  for (const name of await readdir(join(root.datadir, 'sounds'))) {
    let path = join(root.datadir, 'sounds', name)
    for (let hops = 0; hops < 10 && (await lstat(path).catch(() => undefined))?.isSymbolicLink(); hops++) {
      const target = await readlink(path)
      path = isAbsolute(target) ? join(root.dir, target) : resolve(dirname(path), target)
    }
    await symlink(path, join(dest, 'sounds', name))
  }
}

async function editConf(dir: string, file: string, edit: (doc: ConfDoc) => void): Promise<void> {
  const path = join(dir, file)
  const doc = parseConf(await readFile(path, 'utf8'), file)
  edit(doc)
  await writeFile(path, printConf(doc))
}

export interface AsteriskOptions {
  /** pjsip_endpoint.conf for this PBX (the shipped one defines no one). */
  endpoints?: string
  /** Further edits to the config copy, by file name. */
  edit?: Record<string, (doc: ConfDoc) => void>
  /** Text appended to files of the config copy, by file name. */
  append?: Record<string, string>
}

export interface Asterisk {
  /** The scratch dir: etc/ (the config copy), spool/, mail/ ... */
  dir: string
  /** Where MiniVM's mailcmd leaves each mail it is given, as mail-<pid>.eml. */
  mailDir: string
  spoolDir: string
  sipPort: number
  tlsPort: number
  /** `core show version`. */
  version: string
  /** What Asterisk logged up to "fully booted". */
  bootLog: string
  rx(command: string): Promise<string>
  /** Everything Asterisk logged so far. */
  log(): string
  /** Resolves with the first mail mailcmd was given that matches, once there is one. */
  waitForMail(pattern: RegExp, timeoutMs?: number): Promise<string>
  /** Resolves with the first match in the log (from `from`, an offset into it), once there is one. */
  waitForLog(pattern: RegExp, opts?: { from?: number; timeoutMs?: number }): Promise<RegExpMatchArray>
  stop(): Promise<void>
}

// MiniVM runs mailcmd as `( mailcmd < file ; rm -f file ) &`; this keeps each mail whole (written
// aside, then renamed) for the test to read.
const SAVE_MAIL = `#!/bin/sh
dir=$(dirname "$0")/mail
cat > "$dir/.mail-$$" && mv "$dir/.mail-$$" "$dir/mail-$$.eml"
`

const run = promisify(execFile)

export interface PreparedAsterisk {
  /** The scratch dir: etc/ (the config copy), spool/, mail/ ... */
  dir: string
  /** The config copy: ASTERISK_CONF_DIR. */
  etc: string
  mailDir: string
  spoolDir: string
  sipPort: number
  tlsPort: number
  certFile: string
  keyFile: string
  target: AsteriskTarget
  remove(): Promise<void>
}

/** The config copy and scratch dirs, ready for an Asterisk to start on (by startAsterisk, or by `privatedial run`). */
export async function prepareAsterisk(binary: AsteriskBinary, opts: AsteriskOptions = {}): Promise<PreparedAsterisk> {
  const dir = await mkdtemp(join(tmpdir(), 'pd-ast-'))
  const etc = join(dir, 'etc')
  const paths = {
    lib: join(dir, 'lib'),
    spool: join(dir, 'spool'),
    run: join(dir, 'run'),
    log: join(dir, 'log'),
    cache: join(dir, 'cache'),
  }
  for (const p of [etc, join(dir, 'mail'), join(dir, 'ssl'), ...Object.values(paths)])
    await mkdir(p, { recursive: true })
  for (const f of await readdir(SHIPPED_CONFIG)) await writeFile(join(etc, f), await readFile(join(SHIPPED_CONFIG, f)))
  if (opts.endpoints !== undefined) await writeFile(join(etc, 'pjsip_endpoint.conf'), opts.endpoints)
  await writeFile(join(dir, 'save-mail'), SAVE_MAIL)
  await chmod(join(dir, 'save-mail'), 0o755)
  await run('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-days',
    '1',
    '-subj',
    '/CN=localhost',
    '-keyout',
    join(dir, 'ssl/priv_key.pem'),
    '-out',
    join(dir, 'ssl/cert.pem'),
  ])

  const [sipPort, tlsPort] = [await freePort(), await freePort()]
  await editConf(etc, 'asterisk.conf', (doc) => {
    const set = (key: string, value: string) => setValue(doc, 'directories', key, value, '=>')
    set('astetcdir', etc)
    set('astvarlibdir', paths.lib)
    set('astdbdir', paths.lib)
    set('astkeydir', paths.lib)
    set('astspooldir', paths.spool)
    set('astrundir', paths.run)
    set('astlogdir', paths.log)
    set('astcachedir', paths.cache)
    if (binary.root) {
      set('astmoddir', binary.root.moddir)
      set('astdatadir', join(dir, 'data'))
    }
    // Call flow on the log, for the tests to wait for and for whoever reads a failure.
    setValue(doc, 'options', 'verbose', '3')
  })
  if (binary.root) await linkDataDir(binary.root, join(dir, 'data'))
  await editConf(etc, 'pjsip_transport.conf', (doc) => {
    setValue(doc, 't_wan', 'bind', `127.0.0.1:${sipPort}`)
    setValue(doc, 'tls', 'bind', `127.0.0.1:${tlsPort}`)
    setValue(doc, 'tls', 'cert_file', join(dir, 'ssl/cert.pem'))
    setValue(doc, 'tls', 'priv_key_file', join(dir, 'ssl/priv_key.pem'))
  })
  await editConf(etc, 'minivm.conf', (doc) => setValue(doc, 'general', 'mailcmd', join(dir, 'save-mail')))
  for (const [file, edit] of Object.entries(opts.edit ?? {})) await editConf(etc, file, edit)
  for (const [file, text] of Object.entries(opts.append ?? {}))
    await writeFile(join(etc, file), `${await readFile(join(etc, file), 'utf8')}\n${text}`)

  return {
    dir,
    etc,
    mailDir: join(dir, 'mail'),
    spoolDir: paths.spool,
    sipPort,
    tlsPort,
    certFile: join(dir, 'ssl/cert.pem'),
    keyFile: join(dir, 'ssl/priv_key.pem'),
    target: { bin: binary.bin, confDir: etc },
    remove: () => rm(dir, { recursive: true, force: true }),
  }
}

export async function startAsterisk(binary: AsteriskBinary, opts: AsteriskOptions = {}): Promise<Asterisk> {
  const { dir, mailDir, spoolDir, sipPort, tlsPort, target, remove } = await prepareAsterisk(binary, opts)
  let output = ''
  const listeners = new Set<() => void>()
  let exited = false
  const child: Child = spawnAsterisk(target, {
    onLine: (line) => {
      output += `${line}\n`
      for (const l of listeners) l()
    },
  })
  void child.exited.then(() => {
    exited = true
    for (const l of listeners) l()
  })

  const stop = async () => {
    if (!exited) {
      await remote(target, 'core stop now').catch(() => child.kill('SIGTERM'))
      const deadline = setTimeout(() => child.kill('SIGKILL'), 10_000)
      await child.exited
      clearTimeout(deadline)
    }
    await remove()
  }

  try {
    await waitFullyBooted(target, () => !exited, 60_000)
  } catch (err) {
    await stop()
    throw new Error(`starting Asterisk (${binary.bin}): ${(err as Error).message}\n${output}`, { cause: err })
  }
  const bootLog = output
  const version = (await remote(target, 'core show version')).trim()

  return {
    dir,
    mailDir,
    spoolDir,
    sipPort,
    tlsPort,
    version,
    bootLog,
    rx: (command) => remote(target, command),
    log: () => output,
    waitForLog: (pattern, { from = 0, timeoutMs = 30_000 } = {}) =>
      new Promise((done, fail) => {
        const check = () => {
          const m = output.slice(from).match(pattern)
          if (m) finish(() => done(m))
          else if (exited) finish(() => fail(new Error(`Asterisk exited before logging ${pattern}`)))
        }
        const timer = setTimeout(
          () => finish(() => fail(new Error(`Asterisk did not log ${pattern} within ${timeoutMs} ms`))),
          timeoutMs,
        )
        const finish = (settle: () => void) => {
          clearTimeout(timer)
          listeners.delete(check)
          settle()
        }
        listeners.add(check)
        check()
      }),
    waitForMail: async (pattern, timeoutMs = 60_000) => {
      for (
        const deadline = Date.now() + timeoutMs;
        Date.now() < deadline;
        await new Promise((r) => setTimeout(r, 100))
      ) {
        for (const f of (await readdir(join(dir, 'mail'))).filter((f) => f.endsWith('.eml'))) {
          const mail = await readFile(join(dir, 'mail', f), 'utf8')
          if (pattern.test(mail)) return mail
        }
      }
      throw new Error(`no mail matching ${pattern} within ${timeoutMs} ms`)
    },
    stop,
  }
}

export interface TestPbx extends Asterisk {
  /** Asterisk's SIP address, host:port, for sipp. */
  target: string
  /** The port the trunk (itsp:test) sends from and is reached at. */
  trunkPort: number
  /** The port the WebSMS service's endpoint is matched at. */
  websmsPort: number
}

/**
 * The test users of test/fixtures/sipp/pjsip_endpoint.conf, the trunk at a sipp port, and the
 * WebSMS endpoint at its own port. Everything runs on 127.0.0.1, so the trunk and the WebSMS
 * service are told apart from phones by source port.
 */
async function testPbxOptions(
  opts: AsteriskOptions,
): Promise<{ options: AsteriskOptions; trunkPort: number; websmsPort: number }> {
  const [trunkPort, websmsPort] = [await freePort(), await freePort()]
  const endpoints = parseConf(
    await readFile(join(SCENARIO_FIXTURES, 'pjsip_endpoint.conf'), 'utf8'),
    'pjsip_endpoint.conf',
  )
  setValue(endpoints, 'itsp:test', 'remote_hosts', `127.0.0.1:${trunkPort}`)
  const options = {
    ...opts,
    endpoints: printConf(endpoints),
    edit: { 'pjsip.conf': (doc: ConfDoc) => setValue(doc, 'websms', 'match', `127.0.0.1:${websmsPort}`), ...opts.edit },
  }
  return { options, trunkPort, websmsPort }
}

export async function startTestPbx(binary: AsteriskBinary, opts: AsteriskOptions = {}): Promise<TestPbx> {
  const { options, trunkPort, websmsPort } = await testPbxOptions(opts)
  const ast = await startAsterisk(binary, options)
  return { ...ast, target: `127.0.0.1:${ast.sipPort}`, trunkPort, websmsPort }
}

/** The test PBX's config, for `privatedial run` to start Asterisk on. */
export async function prepareTestPbx(
  binary: AsteriskBinary,
  opts: AsteriskOptions = {},
): Promise<PreparedAsterisk & { trunkPort: number; websmsPort: number }> {
  const { options, trunkPort, websmsPort } = await testPbxOptions(opts)
  return { ...(await prepareAsterisk(binary, options)), trunkPort, websmsPort }
}

/** The users of test/fixtures/sipp/pjsip_endpoint.conf. */
export const USERS = {
  alice: { password: 'alice-pw-7f3k', number: '+12025550101' },
  bob: { password: 'bob-pw-q8w2', number: '+12025550102' },
  /** w_term_i: local calls and texts only. */
  carol: { password: 'carol-pw-z1x9', number: '+12025550103' },
  /** Never registers a phone. */
  dave: { password: 'dave-pw-m4n5', number: '+12025550104' },
  /** Texts other numbers over WebSMS; no mailbox. */
  erin: { password: 'erin-pw-r6t7', number: '+12025550105' },
  /** Calls go to dp_entry_answer. */
  probe: { password: 'probe-pw-c3v4', number: undefined },
} as const

export type UserName = keyof typeof USERS
