// The privatedial command as users and the image run it: a real subprocess, its output and exit code.
import t from 'tap'
import { chmodSync, cpSync, mkdtempSync, readFileSync, readdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execa } from 'execa'
import { DEFAULTS_DIR } from '../src/config/seed.ts'

const cli = new URL('../bin/privatedial.js', import.meta.url).pathname
const run = (args: string[], env: Record<string, string> = {}) =>
  execa(process.execPath, [cli, ...args], {
    reject: false,
    env: { PATH: process.env.PATH ?? '', ...env },
    extendEnv: false,
  })

function confCopy(): string {
  const dir = mkdtempSync(join(tmpdir(), 'pd-cli-'))
  cpSync(DEFAULTS_DIR, dir, { recursive: true })
  return dir
}
const snapshot = (dir: string) =>
  Object.fromEntries(readdirSync(dir).map((f) => [f, readFileSync(join(dir, f), 'utf8')]))

t.test('--help lists every command and variable; each command has its own help', async (t) => {
  const r = await run(['--help'])
  t.equal(r.exitCode, 0)
  for (const c of ['run', 'apply', 'check', 'cert', 'health', 'bans']) {
    t.match(r.stdout, new RegExp(`^  ${c} `, 'm'), c)
    const h = await run([c, '--help'])
    t.equal(h.exitCode, 0, `${c} --help`)
    t.match(h.stdout, new RegExp(`^Usage: privatedial ${c}`))
  }
  t.match(r.stdout, /SMTP_PASSWORD \(or _FILE\)/)
  t.equal((await run([])).exitCode, 64, 'no command is a usage error')
})

t.test('usage errors exit 64 and say what was expected', async (t) => {
  const r = await run(['frobnicate'])
  t.equal(r.exitCode, 64)
  t.match(r.stdout, /unknown command `frobnicate`; expected one of run, apply, check, cert, bans, health/)
  t.equal((await run(['apply', '--force'])).exitCode, 64)
  t.equal((await run(['apply', 'extra'])).exitCode, 64, 'a command that takes no words refuses them')
  const bans = await run(['bans', 'remove', '203.0.113.5'])
  t.equal(bans.exitCode, 64)
  t.match(bans.stdout, /expected `bans` or `bans delete ADDRESS`, got `bans remove 203\.0\.113\.5`/)
  const notAnAddress = await run(['bans', 'delete', '203.0.113.5;reboot'])
  t.equal(notAnAddress.exitCode, 64)
  t.match(notAnAddress.stdout, /expected an IPv4 or IPv6 address, got `203\.0\.113\.5;reboot`/)
})

t.test('bad environment exits 78, one line per problem, secrets masked, nothing changed', async (t) => {
  const dir = confCopy()
  const before = snapshot(dir)
  const r = await run(['apply'], {
    ASTERISK_CONF_DIR: dir,
    SIP_PORT: '99999',
    RTP_PORT_MIN: 'x',
    SMTP_PASSWORD: 'a\nhunter2',
  })
  t.equal(r.exitCode, 78)
  const errors = r.stdout.split('\n').filter((l) => / ERROR /.test(l))
  t.equal(errors.length, 4, 'three problems and the summary')
  t.match(r.stdout, /SIP_PORT must be a port number 1-65535, got `99999`/)
  t.match(r.stdout, /RTP_PORT_MIN must be a port number .*, got `x`/)
  t.notMatch(r.stdout, /hunter2/)
  t.same(snapshot(dir), before)
})

t.test('apply --dry-run prints a diff and writes nothing; apply writes; again is unchanged', async (t) => {
  const dir = confCopy()
  const before = snapshot(dir)
  const env = { ASTERISK_CONF_DIR: dir, SIP_PORT: '5560' }
  const dry = await run(['apply', '--dry-run'], env)
  t.equal(dry.exitCode, 0)
  t.match(dry.stdout, /^--- a\/pjsip_transport\.conf\n\+\+\+ b\/pjsip_transport\.conf/m)
  t.match(dry.stdout, /^\+bind = 0\.0\.0\.0:5560$/m)
  t.same(snapshot(dir), before)
  const real = await run(['apply'], env)
  t.equal(real.exitCode, 0)
  t.match(real.stdout, /set pjsip_transport\.conf \[t_wan\] bind from=SIP_PORT was=0\.0\.0\.0:5060 now=0\.0\.0\.0:5560/)
  const again = await run(['apply'], env)
  t.match(again.stdout, /unchanged/)
})

t.test('check passes on the shipped suite and fails with file:line on a broken one', async (t) => {
  const dir = confCopy()
  const ok = await run(['check'], { ASTERISK_CONF_DIR: dir })
  t.equal(ok.exitCode, 0, ok.stdout)
  t.match(ok.stdout, / files=\d+ endpoints=0$/m, 'the shipped endpoint file defines nobody')
  const { writeFileSync } = await import('node:fs')
  writeFileSync(join(dir, 'pjsip_endpoint.conf'), '[jane](w_term_nope)\ninbound_auth/username = jane\n')
  const bad = await run(['check'], { ASTERISK_CONF_DIR: dir })
  t.equal(bad.exitCode, 78)
  t.match(bad.stdout, /pjsip_endpoint\.conf:1: \[jane\] inherits template `w_term_nope`, which is not defined/)
})

t.test('check warns, and still passes, when users have no trunk for emergency calls', async (t) => {
  const dir = confCopy()
  const { writeFileSync } = await import('node:fs')
  // The starter file's example, uncommented, with the user on the in-only template.
  const starter = readFileSync(join(DEFAULTS_DIR, 'pjsip_endpoint.conf'), 'utf8').replace(/^;(?=\[|\w)/gm, '')
  writeFileSync(join(dir, 'pjsip_endpoint.conf'), starter.replace('[john.doe](w_term:mydoe)', '[john.doe](w_term_i)'))
  const r = await run(['check'], { ASTERISK_CONF_DIR: dir })
  t.equal(r.exitCode, 0, r.stdout)
  t.match(
    r.stdout,
    /WARN +check: no user can call emergency numbers: no user has a TRUNK_ENDPOINT and EMERGENCY_TRUNK in extensions_local\.conf is empty/,
  )
  const covered = await run(['check'], { ASTERISK_CONF_DIR: dir, EMERGENCY_TRUNK: 'itsp:mydoe' })
  t.match(covered.stdout, /WARN +check: no user can call/, 'check reads the files; apply writes the variable')
  await run(['apply'], { ASTERISK_CONF_DIR: dir, EMERGENCY_TRUNK: 'itsp:mydoe' })
  const applied = await run(['check'], { ASTERISK_CONF_DIR: dir })
  t.notMatch(applied.stdout, /emergency/, 'once applied, the default trunk covers the user')
})

t.test("run with an ASTERISK_BIN that can't run exits 78 at once, naming it, and seeds nothing", async (t) => {
  const empty = mkdtempSync(join(tmpdir(), 'pd-cli-empty-'))
  const missing = await run(['run'], { ASTERISK_CONF_DIR: empty, ASTERISK_BIN: '/nonexistent/asterisk' })
  t.equal(missing.exitCode, 78)
  t.match(missing.stdout, /ASTERISK_BIN: `\/nonexistent\/asterisk` does not exist/)
  t.notMatch(missing.stdout, /Asterisk started|restarting/)
  t.same(readdirSync(empty), [], 'the config dir is untouched')
  const notOnPath = await run(['run'], {
    ASTERISK_CONF_DIR: empty,
    ASTERISK_BIN: 'asterisk-nope',
    PATH: '/usr/bin:/bin',
  })
  t.equal(notOnPath.exitCode, 78)
  t.match(notOnPath.stdout, /ASTERISK_BIN: `asterisk-nope` is in no directory of PATH \(\/usr\/bin:\/bin\)/)
  const notExecutable = await run(['run'], {
    ASTERISK_CONF_DIR: empty,
    ASTERISK_BIN: join(DEFAULTS_DIR, 'asterisk.conf'),
  })
  t.equal(notExecutable.exitCode, 78)
  t.match(notExecutable.stdout, /asterisk\.conf` is not executable/)
})

t.test(
  'run refuses, exit 78, a config file the Asterisk user could not read',
  { skip: process.getuid?.() !== 0 && 'needs root: run drops to ASTERISK_USER only as root' },
  async (t) => {
    const dir = confCopy()
    chmodSync(dir, 0o755)
    chmodSync(join(dir, 'pjsip_endpoint.conf'), 0o600)
    const r = await run(['run'], { ASTERISK_CONF_DIR: dir, ASTERISK_USER: 'nobody', ASTERISK_BIN: '/bin/true' })
    t.equal(r.exitCode, 78)
    t.match(
      r.stdout,
      new RegExp(
        `Asterisk runs as user nobody \\(uid \\d+, gid \\d+\\) and can't read ${join(dir, 'pjsip_endpoint.conf').replaceAll('/', '\\/')} \\(mode 0600, owner 0:0\\)`,
      ),
    )
    t.notMatch(r.stdout, /Asterisk started/)
    const unknown = await run(['run'], {
      ASTERISK_CONF_DIR: dir,
      ASTERISK_USER: 'no-such-user-pd',
      ASTERISK_BIN: '/bin/true',
    })
    t.equal(unknown.exitCode, 78)
    t.match(unknown.stdout, /ASTERISK_USER names `no-such-user-pd`, which is not a user on this system/)
    t.equal(unknown.stderr, '', 'nothing but our own log lines')
  },
)

t.test('health is unhealthy, exit 1, when no Asterisk answers', async (t) => {
  const r = await run(['health'], { ASTERISK_CONF_DIR: confCopy(), ASTERISK_BIN: '/nonexistent/asterisk' })
  t.equal(r.exitCode, 1)
  t.match(r.stdout, /^unhealthy: /m)
})
