// A Docker engine for the image tests: whether there is one (and why not), a compose project in a
// scratch copy of the repository under a name no other run uses, and a container's log followed
// line by line.
import { spawn, spawnSync } from 'node:child_process'
import { cpSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { basename, join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { execa, type Options, type Result } from 'execa'

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
export function scratchRepo(): string {
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

export function composeProject(dir: string, name: string, override: string): Project {
  const compose = (args: string[], opts: Options = {}) =>
    execa('docker', ['compose', '-p', name, '-f', 'docker-compose.yml', '-f', override, ...args], {
      cwd: dir,
      // The legacy builder: BuildKit needs buildx, which the engine setup does not install.
      env: { DOCKER_BUILDKIT: '0', COMPOSE_BAKE: 'false' },
      ...opts,
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
