// The image and compose file checked for what can be checked without an engine (test/image.ts
// builds and runs them): what they copy exists, and every port, path, variable and command they
// name agrees with the code and the README.
import t from 'tap'
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parse as parseYaml } from 'yaml'
import { getValues, parseConf, resolveValues } from '../src/config/conf.ts'
import { portOf } from '../src/config/apply.ts'
import { settingByName, SETTINGS } from '../src/config/settings.ts'

const root = new URL('..', import.meta.url).pathname
const read = (f: string) => readFileSync(join(root, f), 'utf8')
const dockerfile = read('Dockerfile')
const compose = parseYaml(read('docker-compose.yml')) as { services: Record<string, Record<string, unknown>> }
const pbx = compose.services.pbx!
const pkg = JSON.parse(read('package.json')) as { bin: Record<string, string> }
const readme = read('README.md')
const etc = join(root, 'rootfs/etc/asterisk')
const transport = parseConf(readFileSync(join(etc, 'pjsip_transport.conf'), 'utf8'))
const rtp = parseConf(readFileSync(join(etc, 'rtp.conf'), 'utf8'))
const sipPort = portOf(resolveValues([transport], 'udp', 'bind').at(-1))!
const tlsPort = portOf(resolveValues([transport], 'tls', 'bind').at(-1))!
const rtpRange = `${getValues(rtp, 'general', 'rtpstart')[0]}-${getValues(rtp, 'general', 'rtpend')[0]}`

t.test('every COPY source exists and is in the build context', async (t) => {
  const sources = [...dockerfile.matchAll(/^COPY (?!--from)(.+) \S+$/gm)].flatMap((m) => m[1]!.split(/\s+/))
  t.ok(sources.length >= 4)
  for (const s of sources) t.ok(existsSync(join(root, s)), s)
  // .dockerignore excludes everything and lets back in what the build copies.
  const ignore = read('.dockerignore')
    .split('\n')
    .filter((l) => l && !l.startsWith('#'))
  t.equal(ignore[0], '*')
  const letIn = ignore.filter((l) => l.startsWith('!')).map((l) => l.slice(1))
  for (const s of sources)
    t.ok(
      letIn.some((l) => s === l || s.startsWith(`${l}/`)),
      `.dockerignore lets ${s} in`,
    )
  for (const secret of ['pjsip_endpoint.conf', 'smtp_password', 'node_modules'])
    t.notOk(ignore.includes(`!${secret}`), `${secret} stays out`)
})

t.test('a fresh clone has every host file compose mounts, so `docker compose up -d` starts', async (t) => {
  const hostFiles = (pbx.volumes as string[]).map((v) => v.split(':')[0]!).filter((src) => src.startsWith('.'))
  t.ok(hostFiles.includes('./pjsip_endpoint.conf'))
  for (const f of hostFiles) t.ok(existsSync(join(root, f)), `${f} is in the repository`)
  const secrets = Object.values((compose as { secrets?: Record<string, { file?: string }> }).secrets ?? {}).flatMap(
    (s) => (s.file ? [s.file] : []),
  )
  for (const f of secrets) t.ok(existsSync(join(root, f)), `secret file ${f} is in the repository`)
  t.doesNotThrow(
    () => parseConf(read('pjsip_endpoint.conf'), 'pjsip_endpoint.conf'),
    'the starter endpoint file is a valid config file',
  )
})

t.test('entrypoint and healthcheck run package bins under tini', async (t) => {
  t.match(dockerfile, /^ENTRYPOINT \["\/usr\/bin\/tini", "--"\]$/m)
  t.match(dockerfile, /^CMD \["privatedial", "run"\]$/m)
  t.match(dockerfile, /^HEALTHCHECK .*CMD \["privatedial", "health"\]$/m)
  // The image runs src/ compiled to dist/ (no TypeScript stripper in memory); each package bin
  // has its compiled twin on the image's PATH.
  const links = Object.fromEntries(
    [...dockerfile.matchAll(/ln -s \/opt\/privatedial\/dist\/(\S+)\.js \/usr\/local\/bin\/(\S+);/g)].map((m) => [
      m[2]!,
      m[1]!,
    ]),
  )
  t.same(Object.keys(links).sort(), Object.keys(pkg.bin).sort(), "every package bin is on the image's PATH")
  for (const [name, entry] of Object.entries(links))
    t.ok(existsSync(join(root, 'src', `${entry}.ts`)), `${name} runs dist/${entry}.js, built from src/${entry}.ts`)
  t.match(dockerfile, /^RUN npm run build$/m, 'the image builds dist/')
})

t.test('exposed and published ports match the shipped config', async (t) => {
  const expose = /^EXPOSE (.+)$/m.exec(dockerfile)![1]!.split(/\s+/)
  for (const p of [`${sipPort}/udp`, `${sipPort}/tcp`, `${tlsPort}/tcp`, `${rtpRange}/udp`])
    t.ok(expose.includes(p), `EXPOSE ${p}`)
  const ports = pbx.ports as string[]
  for (const p of [
    `${sipPort}:${sipPort}/udp`,
    `${sipPort}:${sipPort}/tcp`,
    `${tlsPort}:${tlsPort}/tcp`,
    `${rtpRange}:${rtpRange}/udp`,
  ])
    t.ok(ports.includes(p), `compose publishes ${p}`)
  for (const p of [sipPort, tlsPort, rtpRange]) t.match(readme, `| ${p}`, `README ports table has ${p}`)
})

t.test('compose sets only variables the code reads', async (t) => {
  const known = new Set(
    SETTINGS.flatMap((s) => [s.name, ...(s.aliases ?? []), ...(s.secret ? [`${s.name}_FILE`] : [])]),
  )
  for (const name of Object.keys(pbx.environment as object)) t.ok(known.has(name), name)
  const dockerEnv = [...dockerfile.matchAll(/^\s*(?:ENV )?([A-Z_]+)=\S+ ?\\?$/gm)].map((m) => m[1]!)
  for (const name of dockerEnv) t.ok(known.has(name), `Dockerfile ENV ${name}`)
})

t.test('the one volume holds config, certificates, spool and logs, at the paths the code defaults to', async (t) => {
  t.match(dockerfile, /^VOLUME \/srv$/m)
  const linked = /for d in ([^;]+); do/.exec(dockerfile)![1]!.trim().split(/\s+/)
  for (const p of ['/etc/asterisk', '/etc/ssl/asterisk', '/var/spool/asterisk', '/var/log/asterisk'])
    t.ok(linked.includes(p), `${p} lives in /srv`)
  for (const f of [settingByName('TLS_CERT_FILE').value!, settingByName('TLS_KEY_FILE').value!])
    t.ok(
      linked.some((d) => f.startsWith(d + '/')),
      `${f} is in the volume`,
    )
  const volumes = pbx.volumes as string[]
  t.ok(
    volumes.some((v) => v.endsWith(':/srv')),
    'compose mounts the volume',
  )
  t.ok(
    volumes.some((v) => v.endsWith(':/srv/etc/asterisk/pjsip_endpoint.conf')),
    'compose mounts the endpoint file from the host',
  )
  t.match(readme, '| `/srv`', 'README volumes table')
})

t.test(
  'bans can drop packets in the container: compose grants NET_ADMIN, the image has nft, the ban file is on the volume',
  async (t) => {
    t.same(pbx.cap_add, ['NET_ADMIN'], 'compose adds NET_ADMIN, and nothing more')
    t.match(dockerfile, /apt-get install[^\n]*\n?[^\n]*\bnftables\b/, 'the image installs nftables')
    const banFile = SETTINGS.find((s) => s.name === 'BAN_FILE')!.default
    t.ok(banFile.startsWith('/var/lib/asterisk/db/'), `${banFile} is under /var/lib/asterisk/db, which lives in /srv`)
    t.match(dockerfile, /\/var\/lib\/asterisk\/db; do/, 'the Dockerfile links /var/lib/asterisk/db into /srv')
  },
)

t.test('Docker waits longer than run drains calls', async (t) => {
  const grace = Number(
    (pbx.environment as Record<string, string>).STOP_GRACE_SECONDS ??
      SETTINGS.find((s) => s.name === 'STOP_GRACE_SECONDS')!.default,
  )
  const compose = Number(/^(\d+)s$/.exec(String(pbx.stop_grace_period))![1])
  t.ok(compose > grace + 2, `stop_grace_period ${compose}s > STOP_GRACE_SECONDS ${grace}s + a hard stop`)
})

t.test('the asterisk user has the fixed ids the README tells hosts to grant files to', async (t) => {
  const uid = /useradd [^\n]*--uid (\d+)[^\n]* asterisk;/.exec(dockerfile)?.[1]
  const gid = /groupadd [^\n]*--gid (\d+) asterisk;/.exec(dockerfile)?.[1]
  t.ok(uid && gid, 'Dockerfile creates the asterisk user and group with fixed ids, before the package would')
  t.ok(
    dockerfile.indexOf('useradd') < dockerfile.indexOf('apt-get install'),
    'before the asterisk package is installed',
  )
  t.match(readme, `uid and gid ${uid}`)
  t.match(readme, `chgrp ${gid}`)
})
