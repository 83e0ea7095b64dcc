// A Docker engine for the image tests: whether there is one (and why not), a compose project in a
// scratch copy of the repository under a name no other run uses, and a container's log followed
// line by line.
import { spawn, spawnSync } from 'node:child_process'
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { execa, type Options, type Result } from 'execa'
import { bindable, freePort } from './asterisk.ts'

export const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)))

/** The base images the Dockerfile names; scripts/docker-bases.sh makes stand-ins where Docker Hub is out of reach. */
export const BASES = ['debian:sid-slim', 'node:24-trixie-slim']

/** The engine's version when `docker` and `docker compose` answer and the bases are there; else why not. */
export function findDocker(): { version: string } | string {
  const run = (args: string[]) => spawnSync('docker', args, { encoding: 'utf8', timeout: 20_000 })
  const info = run(['version', '-f', '{{.Server.Version}}'])
  if (info.error || info.status !== 0)
    return `no Docker engine answers (${(info.error?.message ?? info.stderr).trim().split('\n')[0]}); npm run test:setup starts one (scripts/docker-engine.sh, as root)`
  if (run(['compose', 'version']).status !== 0)
    return 'no `docker compose` (v2 plugin); npm run test:setup installs it (scripts/docker-engine.sh)'
  const missing = BASES.filter((b) => run(['image', 'inspect', b]).status !== 0)
  if (missing.length)
    return `no base image ${missing.join(', ')}; npm run test:setup makes stand-ins (scripts/docker-bases.sh)`
  return { version: info.stdout.trim() }
}

/** A copy of the working tree as a user's clone would have it: no node_modules, no .git. */
function scratchRepo(): string {
  const dir = join(mkdtempSync(join(tmpdir(), 'pd-image-')), 'privatedial')
  cpSync(REPO, dir, {
    recursive: true,
    filter: (src) => !['node_modules', '.git'].includes(basename(src)),
  })
  return dir
}

export interface Project {
  name: string
  dir: string
  /** `docker compose` with the repository's compose file and the test's override, in the copy. */
  compose(args: string[], opts?: Options): Promise<Result>
  /** The id of the running pbx container. */
  container(): Promise<string>
}

function composeProject(dir: string, name: string, override: string): Project {
  const compose = (args: string[], opts: Options = {}) =>
    execa('docker', ['compose', '-p', name, '-f', 'docker-compose.yml', '-f', override, ...args], {
      cwd: dir,
      // The legacy builder: BuildKit needs buildx, which the engine setup does not install.
      ...opts,
      env: { DOCKER_BUILDKIT: '0', COMPOSE_BAKE: 'false', ...opts.env },
    }) as Promise<Result>
  return {
    name,
    dir,
    compose,
    container: async () => {
      const id = String((await compose(['ps', '-q', 'pbx'])).stdout).trim()
      if (!id) throw new Error(`compose project ${name} has no pbx container`)
      return id
    },
  }
}

/** `docker` with these arguments; its stdout (with `all`, stdout and stderr), trimmed. */
export async function docker(args: string[], opts: Options = {}): Promise<string> {
  const r = await execa('docker', args, opts)
  return String(opts.all ? r.all : r.stdout).trim()
}

export interface LogFollower {
  lines: string[]
  /** The first line matching `re`, from `from` (an index into lines; default: the container's first line) on. */
  waitFor(re: RegExp, timeoutMs?: number, from?: number): Promise<string>
  stop(): void
}

/** Follows a container's output (`docker logs -f`) from its start. */
export function followLogs(container: string): LogFollower {
  const child = spawn('docker', ['logs', '-f', container], { stdio: ['ignore', 'pipe', 'pipe'] })
  const lines: string[] = []
  const waiters = new Set<() => void>()
  let partial = ''
  const onData = (chunk: Buffer) => {
    const text = partial + chunk.toString('utf8')
    const parts = text.split('\n')
    partial = parts.pop()!
    lines.push(...parts)
    for (const w of waiters) w()
  }
  child.stdout.on('data', onData)
  child.stderr.on('data', onData)
  return {
    lines,
    waitFor: (re, timeoutMs = 30_000, from = 0) =>
      new Promise((resolve, reject) => {
        const check = () => {
          const hit = lines.slice(from).find((l) => re.test(l))
          if (hit === undefined) return
          done()
          resolve(hit)
        }
        const timer = setTimeout(() => {
          done()
          reject(
            new Error(
              `no log line matching ${re} within ${timeoutMs / 1000} s; last lines:\n${lines.slice(-15).join('\n')}`,
            ),
          )
        }, timeoutMs)
        const done = () => {
          clearTimeout(timer)
          waiters.delete(check)
        }
        waiters.add(check)
        check()
      }),
    stop: () => void child.kill(),
  }
}

/**
 * CIDRs covering an IPv4 `subnet` except one `address` in it: as SIP_LOCAL_NET, they make every
 * container on a bridge local to Asterisk, and the bridge's gateway, where connections from the
 * host through a published port come from, a phone out on the internet.
 */
function subnetExcept(subnet: string, address: string): string[] {
  const toInt = (ip: string) => ip.split('.').reduce((n, o) => n * 256 + Number(o), 0)
  const toIp = (n: number) => [24, 16, 8, 0].map((s) => Math.floor(n / 2 ** s) % 256).join('.')
  const addr = toInt(address)
  const out: string[] = []
  for (let len = Number(subnet.split('/')[1]) + 1; len <= 32; len++) {
    const size = 2 ** (32 - len)
    // The half of the enclosing block that does not hold the address.
    const block = Math.floor(addr / size)
    out.push(`${toIp((block % 2 ? block - 1 : block + 1) * size)}/${len}`)
  }
  return out
}

export interface ImageProject extends Project {
  sipPort: number
  tlsPort: number
  /** Where the container expects its SMTP server: host.docker.internal, at this port on `gateway`. */
  smtpPort: number
  /** The host's end of Docker's default bridge. */
  gateway: string
}

/**
 * The repository's compose project in a scratch copy, with an override that publishes free ports
 * on 127.0.0.1 only and sets the documented variables as a user behind NAT would. The image is
 * privatedial-test:$PRIVATEDIAL_TEST_TAG (latest), kept between runs for Docker's build cache.
 */
/**
 * `n` consecutive ports, the first even, free for UDP and TCP, above the kernel's ephemeral range
 * (no other program's socket lands there by chance) and above where test suites pick theirs.
 */
async function freeBlock(n: number): Promise<number> {
  const above = Number(readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/)[1]) + 1
  for (let tries = 0; tries < 100; tries++) {
    const start = 2 * Math.floor((above + Math.random() * (65_536 - above - n)) / 2)
    const ports = Array.from({ length: n }, (_, i) => start + i)
    const free = await Promise.all(ports.flatMap((p) => [bindable(p, 'udp'), bindable(p, 'tcp')]))
    if (free.every(Boolean)) return start
  }
  throw new Error(`no ${n} free ports in a row above ${above - 1}`)
}

export async function imageProject(name: string): Promise<ImageProject> {
  const dir = scratchRepo()
  // The published ports are free again each time the container goes (down, a new image): from
  // outside the kernel's ephemeral range, so no other program's socket takes one meanwhile.
  // Asterisk rounds an odd rtpstart up, so the RTP range starts even.
  const RTP_PORTS = 20
  const base = await freeBlock(RTP_PORTS + 2)
  const [sipPort, tlsPort, rtpMin] = [base, base + 1, base + 2]
  const rtpMax = rtpMin + RTP_PORTS - 1
  const smtpPort = await freePort()
  // The container sits on Docker's default bridge, whose addresses are known before it starts.
  // Everything from this host through a published port comes from the bridge's gateway (Docker's
  // proxy): that address plays the phones out on the internet, so SIP_LOCAL_NET is the rest of the
  // bridge, and SIP_EXTERNAL_HOST the address the phones reach the PBX at. The gateway is also
  // where the container finds this test's SMTP server, as host.docker.internal.
  const bridge = (field: string) =>
    docker(['network', 'inspect', 'bridge', '-f', `{{(index .IPAM.Config 0).${field}}}`])
  const gateway = await bridge('Gateway')
  const localNet = subnetExcept(await bridge('Subnet'), gateway).join(',')
  const override = 'test-override.yml'
  writeFileSync(
    `${dir}/${override}`,
    `services:
  pbx:
    image: privatedial-test:\${PRIVATEDIAL_TEST_TAG:-latest}
    environment:
      SIP_EXTERNAL_HOST: 127.0.0.1
      SIP_LOCAL_NET: ${localNet}
      SIP_PORT: '${sipPort}'
      SIP_TLS_PORT: '${tlsPort}'
      RTP_PORT_MIN: '${rtpMin}'
      RTP_PORT_MAX: '${rtpMax}'
      SMTP_HOST: host.docker.internal
      SMTP_PORT: '${smtpPort}'
      SMTP_SECURITY: none
    network_mode: bridge
    extra_hosts:
      - host.docker.internal:host-gateway
    ports: !override
      - 127.0.0.1:${sipPort}:${sipPort}/udp
      - 127.0.0.1:${sipPort}:${sipPort}/tcp
      - 127.0.0.1:${tlsPort}:${tlsPort}/tcp
      - 127.0.0.1:${rtpMin}-${rtpMax}:${rtpMin}-${rtpMax}/udp
`,
  )
  return { ...composeProject(dir, name, override), sipPort, tlsPort, smtpPort, gateway }
}
