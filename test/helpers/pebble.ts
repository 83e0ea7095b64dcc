// Debian's real pebble ACME test CA on loopback, started per test with a generated config, and
// pebble-challtestsrv as its DNS server so that any name resolves to 127.0.0.1 for HTTP-01.
import { freePort } from './ports.ts'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { accessSync, constants } from 'node:fs'
import { delimiter, join } from 'node:path'
import { execa, type ResultPromise } from 'execa'

function onPath(cmd: string): boolean {
  return (process.env.PATH ?? '').split(delimiter).some((dir) => {
    try {
      accessSync(join(dir, cmd), constants.X_OK)
      return true
    } catch {
      return false
    }
  })
}

/** Why pebble tests cannot run here, or false when they can. */
export function pebbleMissing(): string | false {
  for (const cmd of ['pebble', 'pebble-challtestsrv']) {
    if (!onPath(cmd)) return `${cmd} is not installed (Debian package "pebble"; .ci/run installs it)`
  }
  return false
}

// Debian's package ships no test certificate for pebble's HTTPS listener, so each pebble gets one.
async function pebbleTls(dir: string) {
  const cert = join(dir, 'listener-cert.pem')
  const key = join(dir, 'listener-key.pem')
  await execa('openssl', [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    key,
    '-out',
    cert,
    '-days',
    '2',
    '-subj',
    '/CN=pebble test listener',
    '-addext',
    'subjectAltName=IP:127.0.0.1,DNS:localhost',
  ])
  return { cert, key, pem: await readFile(cert, 'utf8') }
}

export interface PebbleOptions {
  /** For config, certificates and state; a tap t.testdir() so it is cleaned up. */
  dir: string
  /** PEBBLE_VA_ALWAYS_VALID: no challenge is really checked. */
  alwaysValid: boolean
  /** Port pebble's VA connects to for HTTP-01 (our listener's). */
  httpPort?: number
  /** kid -> base64url HMAC key; makes external account binding required. */
  eabKeys?: Record<string, string>
}

export interface Pebble {
  directoryUrl: string
  /** Trust this for pebble's HTTPS. */
  caCert: string
  httpPort: number
  /** Everything pebble printed, for assertions and failure reports. */
  output(): string
  /** Start again on the same ports (a fresh CA: new roots, no accounts). */
  start(): Promise<void>
  stop(): Promise<void>
}

/** Resolve when this process has printed `pattern`; everything it prints also goes to `sink`. */
async function waitForLine(proc: ResultPromise, pattern: RegExp, what: string, sink: string[]): Promise<void> {
  let seen = ''
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} did not start within 15 s:\n${seen}`)), 15_000)
    const onData = (chunk: Buffer) => {
      sink.push(chunk.toString())
      seen += chunk.toString()
      if (pattern.test(seen)) {
        clearTimeout(timer)
        resolve()
      }
    }
    proc.stdout?.on('data', onData)
    proc.stderr?.on('data', onData)
    proc.catch((err: unknown) => {
      clearTimeout(timer)
      reject(new Error(`${what} exited before it was ready: ${String(err)}\n${seen}`))
    })
  })
}

export async function startPebble(opts: PebbleOptions): Promise<Pebble> {
  const { dir } = opts
  await mkdir(dir, { recursive: true })
  const tls = await pebbleTls(dir)
  const [acmePort, mgmtPort, dnsPort, dnsMgmtPort] = await Promise.all([freePort(), freePort(), freePort(), freePort()])
  const httpPort = opts.httpPort ?? (await freePort())
  const config = join(dir, 'pebble-config.json')
  await writeFile(
    config,
    JSON.stringify({
      pebble: {
        listenAddress: `127.0.0.1:${acmePort}`,
        managementListenAddress: `127.0.0.1:${mgmtPort}`,
        certificate: tls.cert,
        privateKey: tls.key,
        httpPort,
        tlsPort: await freePort(),
        ocspResponderURL: '',
        externalAccountBindingRequired: opts.eabKeys !== undefined,
        ...(opts.eabKeys ? { externalAccountMACKeys: opts.eabKeys } : {}),
      },
    }),
  )
  const output: string[] = []
  let procs: ResultPromise[] = []

  const start = async () => {
    // Every challenge goes through the VA: authorizations are never reused between orders.
    const env = {
      PEBBLE_VA_NOSLEEP: '1',
      PEBBLE_AUTHZREUSE: '0',
      ...(opts.alwaysValid ? { PEBBLE_VA_ALWAYS_VALID: '1' } : {}),
    }
    const spawn = (cmd: string, args: string[]) =>
      execa(cmd, args, { env, cwd: dir, buffer: false, reject: true, stdin: 'ignore' })
    const dns = spawn('pebble-challtestsrv', [
      '-dns01',
      `127.0.0.1:${dnsPort}`,
      '-http01',
      '',
      '-https01',
      '',
      '-tlsalpn01',
      '',
      '-management',
      `127.0.0.1:${dnsMgmtPort}`,
      '-defaultIPv4',
      '127.0.0.1',
      '-defaultIPv6',
      '',
    ])
    const ca = spawn('pebble', ['-config', config, '-dnsserver', `127.0.0.1:${dnsPort}`, '-strict=false'])
    procs = [dns, ca]
    await Promise.all([
      waitForLine(dns, /Starting challenge servers/, 'pebble-challtestsrv', output),
      waitForLine(ca, /Listening on/, 'pebble', output),
    ])
  }
  const stop = async () => {
    const running = procs
    procs = []
    for (const p of running) p.kill('SIGTERM')
    await Promise.allSettled(running)
  }
  await start()
  return {
    directoryUrl: `https://127.0.0.1:${acmePort}/dir`,
    caCert: tls.pem,
    httpPort,
    output: () => output.join(''),
    start,
    stop,
  }
}

// Where the tests have always found them.
export { freePort }
