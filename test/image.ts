// The image users run, built from this working tree with the repository's Dockerfile and started
// with its docker-compose.yml as README says: `docker compose up -d`. The test's override file
// only moves the published ports to free ones on 127.0.0.1 and points the documented settings
// (SIP_EXTERNAL_HOST, SIP_LOCAL_NET, SMTP_*) at this host, as a user behind NAT would set them.
// One compose project, in a scratch copy of the repository, serves the subtests in order.
import t, { type Test } from 'tap'
import { appendFileSync, readFileSync, writeFileSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { dirname } from 'node:path'
import { connect } from 'node:tls'
import { parseConf, printConf, setValue } from '../src/config/conf.ts'
import { freePort, USERS } from './helpers/asterisk.ts'
import { docker, findDocker, followLogs, imageProject, type LogFollower } from './helpers/docker.ts'
import {
  driver,
  finalResponses,
  findSipp,
  requests,
  rtpPcap,
  SCENARIOS,
  tone,
  type SippResult,
} from './helpers/sipp.ts'
import { startSmtpSink, type Sink } from './helpers/smtp-sink.ts'
import { served, TlsPhone } from './helpers/tls-phone.ts'

const engine = findDocker()
const sipp = findSipp()
if (typeof engine === 'string') t.plan(0, `skipped: ${engine}`)
else if (typeof sipp === 'string') t.plan(0, `skipped: ${sipp}`)
else {
  // A first build on a fresh machine, then one call after another through a real container.
  t.setTimeout(20 * 60_000)
  t.comment(`Docker engine ${engine.version}`)
  const project = await imageProject(`pdtest${process.pid}`)
  const { compose, dir, name, sipPort, tlsPort, smtpPort, gateway } = project
  let logs: LogFollower | undefined
  let container = ''
  t.teardown(async () => {
    logs?.stop()
    await compose(['down', '--volumes', '--timeout', '1'], { reject: false })
    await docker(['image', 'rm', 'privatedial-test:upgraded'], { reject: false })
    await rm(dirname(dir), { recursive: true, force: true })
  })
  const started = async () => {
    container = await project.container()
    logs?.stop()
    logs = followLogs(container)
  }
  const rx = (command: string) => docker(['exec', container, 'asterisk', '-rx', command])
  const pbx = driver(sipp.bin, { target: `127.0.0.1:${sipPort}`, trunkPort: await freePort() })
  const startSink = () => startSmtpSink({ tls: 'none', host: gateway, port: smtpPort })
  const until = async <T>(what: string, f: () => Promise<T | undefined>, ms = 60_000): Promise<T> => {
    for (const end = Date.now() + ms; Date.now() < end; await new Promise((r) => setTimeout(r, 300))) {
      const v = await f()
      if (v !== undefined) return v
    }
    throw new Error(`${what} within ${ms / 1000} s`)
  }

  t.test('the image builds from the working tree with the repository Dockerfile', async (t) => {
    const build = await compose(['build', 'pbx'], { reject: false, all: true })
    t.equal(build.exitCode, 0, String(build.all).split('\n').slice(-20).join('\n'))
  })

  t.test('`docker compose up -d` from a clean copy: healthy, Asterisk runs as uid 5060', async (t) => {
    const up = await compose(['up', '-d', '--wait', '--wait-timeout', '120'], { reject: false, all: true })
    t.equal(up.exitCode, 0, String(up.all))
    await started()
    const health = await docker(['inspect', '-f', '{{.State.Health.Status}}', container])
    t.equal(health, 'healthy', "Docker's HEALTHCHECK says healthy")
    t.match(await logs!.waitFor(/PrivateDial ready \d+ ms after start/), 'ready', 'the log says ready')
    const top = await docker(['top', container, '-eo', 'pid,uid,comm'])
    const asterisk = top.split('\n').find((l) => /\basterisk$/.test(l.trim()))
    t.match(asterisk, /^\s*\d+\s+5060\s/, `Asterisk runs as uid 5060\n${top}`)
  })

  t.test("users and a trunk saved to the host's pjsip_endpoint.conf are live, with no restart", async (t) => {
    const pidBefore = await docker(['inspect', '-f', '{{.State.Pid}}', container])
    const top = () => docker(['top', container, '-eo', 'pid,comm'])
    const asteriskPid = (await top()).split('\n').find((l) => /asterisk$/.test(l))
    const endpoints = parseConf(readFileSync(`${SCENARIOS}/pjsip_endpoint.conf`, 'utf8'), 'pjsip_endpoint.conf')
    // The trunk is never called here; it points at this host, where nothing answers for it.
    setValue(endpoints, 'itsp:test', 'remote_hosts', `${gateway}:${await freePort()}`)
    const from = logs!.lines.length
    // In place, as an editor saving over the file does: a bind mount follows the file's inode.
    writeFileSync(`${dir}/pjsip_endpoint.conf`, printConf(endpoints))
    await logs!.waitFor(/reloaded after a change to .*pjsip_endpoint\.conf/, 30_000, from)
    const shown = await rx('pjsip show endpoints')
    for (const e of ['alice', 'bob', 'dave', 'itsp:test'])
      t.match(shown, new RegExp(`Endpoint:\\s+${e}\\b`), `${e} is live`)
    t.equal(await docker(['inspect', '-f', '{{.State.Pid}}', container]), pidBefore, 'the container did not restart')
    t.equal(
      (await top()).split('\n').find((l) => /asterisk$/.test(l)),
      asteriskPid,
      'nor did Asterisk',
    )
  })

  t.test(
    'two phones register through the published port; a call connects with RTP both ways; a text arrives',
    async (t) => {
      const bobPort = await pbx.phone(t, 'bob')
      const alicePort = await pbx.phone(t, 'alice')
      // Both phones talk, as phones do from the moment a call is up (which is how the PBX learns,
      // rtp_symmetric, where each one's media comes from through the NAT).
      const bob = await pbx.start({ scenario: 'uas-answer-wait.xml', port: bobPort, media: rtpPcap(tone(2)) })
      // alice hangs up after 6 s; bob waits for it.
      const caller = pbx.run({
        scenario: 'uac-call-6s.xml',
        port: alicePort,
        auth: pbx.auth('alice'),
        keys: { from: 'alice', to: USERS.bob.number },
        media: rtpPcap(tone(2)),
      })
      let shown = ''
      // pjsip show channelstats: bridge, channel, uptime, codec, then receive count ... transmit count.
      const count = (who: string, column: 4 | 8) =>
        Number(
          shown
            .split('\n')
            .find((r) => r.includes(` ${who}-`))
            ?.trim()
            .split(/\s+/)[column],
        )
      const counts = await until(
        'RTP both ways on both legs',
        async () => {
          shown = await rx('pjsip show channelstats')
          const c = { rxA: count('alice', 4), txA: count('alice', 8), rxB: count('bob', 4), txB: count('bob', 8) }
          return Object.values(c).every((n) => n > 0) ? c : undefined
        },
        20_000,
      ).catch(async (err: Error) => {
        const sdp = (r: SippResult) =>
          r.messages.flatMap((m) => (m.body ? [`${m.direction} ${m.startLine}\n${m.body}`] : []))
        throw new Error(
          `${err.message}; pjsip show channelstats:\n${shown}\nSDP:\n${[...sdp(await caller), ...sdp(await bob.done)].join('\n')}`,
        )
      })
      t.ok(counts.rxA > 0 && counts.rxB > 0, `the PBX receives each phone's RTP through the published range`)
      t.ok(counts.txA > 0 && counts.txB > 0, `and sends each the other's (${JSON.stringify(counts)})`)
      const [a, b] = [await caller, await bob.done]
      t.equal(finalResponses(a, 'INVITE').at(-1), 200, `the call connects\n${a.summary}`)
      t.equal(b.code, 0, b.summary)

      const inbox = await pbx.start({ scenario: 'uas-message.xml', port: bobPort })
      const sent = await pbx.text('alice', USERS.bob.number, 'through the container ✓', { port: alicePort })
      t.equal(finalResponses(sent, 'MESSAGE').at(-1), 202, sent.summary)
      t.same(
        requests(await inbox.done, 'MESSAGE').map((m) => m.body),
        ['through the container ✓'],
        'the text reaches bob',
      )
    },
  )

  /** alice calls dave, who has no phone, and talks into his voicemail. */
  const leaveMessage = async (t: Test) => {
    const r = await pbx.call('alice', USERS.dave.number, { media: rtpPcap(tone(12)) })
    t.equal(finalResponses(r, 'INVITE').at(-1), 200, `voicemail answers\n${r.summary}`)
  }
  const recording = (s: Sink) => {
    const text = s.received[0]?.data.toString('latin1') ?? ''
    const wav = /Content-Type: audio\/x-wav[\s\S]*?\r?\n\r?\n([A-Za-z0-9+/=\r\n]+)/.exec(text)?.[1]
    return Buffer.from(wav ?? '', 'base64')
  }

  t.test('a missed call arrives by e-mail at an SMTP server on the host, recording attached', async (t) => {
    const server = await startSink()
    t.teardown(() => server.close())
    await leaveMessage(t)
    const mail = await until('no mail reached the SMTP server', async () => server.received[0])
    t.same(mail.to, ['dave@example.com'])
    t.equal(recording(server).subarray(8, 12).toString(), 'WAVE', 'the recording is attached')
  })

  t.test('`docker compose down` and `up -d` keep the volume: config edits, certificate, queued mail', async (t) => {
    const before = await served(tlsPort)
    t.match(before, /serial=/, 'a certificate is served')
    await docker(['exec', container, 'sh', '-c', "echo '; my note' >> /etc/asterisk/extensions_local.conf"])
    // The SMTP server is down: the voicemail waits in the volume.
    await leaveMessage(t)
    await until('the mail queued', async () => {
      const spool = await docker(['exec', container, 'ls', '/var/spool/asterisk/minivm-outbox'], { reject: false })
      return /\.eml/.test(spool) ? true : undefined
    })
    const down = await compose(['down'], { reject: false, all: true })
    t.equal(down.exitCode, 0, String(down.all))
    const server = await startSink()
    t.teardown(() => server.close())
    const up = await compose(['up', '-d', '--wait', '--wait-timeout', '120'], { reject: false, all: true })
    t.equal(up.exitCode, 0, String(up.all))
    await started()
    t.match(
      await docker(['exec', container, 'cat', '/etc/asterisk/extensions_local.conf']),
      '; my note',
      'the config edit is still there',
    )
    t.equal(await served(tlsPort), before, 'the same certificate (serial, fingerprint) is served')
    const mail = await until('the queued mail delivered', async () => server.received[0])
    t.same(mail.to, ['dave@example.com'], 'the queued mail is delivered after the restart')
  })

  t.test('a new image: untouched files are updated, changed ones get .new beside them, new ones seeded', async (t) => {
    await docker(['exec', container, 'sh', '-c', "echo '; mine' >> /etc/asterisk/pjsip_wizard.conf"])
    const etc = `${dir}/rootfs/etc/asterisk`
    appendFileSync(`${etc}/extensions.conf`, '; fixed in a later image\n')
    appendFileSync(`${etc}/pjsip_wizard.conf`, '; fixed in a later image\n')
    writeFileSync(`${etc}/new_in_this_image.conf`, '; a file this image adds\n')
    const up = await compose(['up', '-d', '--build', '--wait', '--wait-timeout', '180'], {
      reject: false,
      all: true,
      env: { PRIVATEDIAL_TEST_TAG: 'upgraded' },
    })
    t.equal(up.exitCode, 0, String(up.all).split('\n').slice(-20).join('\n'))
    await started()
    const cat = (f: string) => docker(['exec', container, 'cat', `/etc/asterisk/${f}`], { reject: false })
    t.match(await cat('extensions.conf'), '; fixed in a later image', 'the file the user never changed is updated')
    const wizard = await cat('pjsip_wizard.conf')
    t.match(wizard, '; mine', 'the changed file is kept')
    t.notMatch(wizard, '; fixed in a later image')
    t.match(await cat('pjsip_wizard.conf.new'), '; fixed in a later image', 'the new version is beside it')
    t.match(await cat('new_in_this_image.conf'), 'a file this image adds', 'the new file is seeded')
    const said = await logs!.waitFor(/pjsip_wizard\.conf\.new/)
    t.match(
      said,
      /diff -u \/etc\/asterisk\/pjsip_wizard\.conf \/etc\/asterisk\/pjsip_wizard\.conf\.new/,
      'one line says how to compare',
    )
    t.equal(logs!.lines.filter((l) => l.includes('pjsip_wizard.conf.new')).length, 1)
  })

  t.test('a phone registers over TLS; the certificate served is the one the log names', async (t) => {
    const socket = connect({ host: '127.0.0.1', port: tlsPort, rejectUnauthorized: false })
    await new Promise((r) => socket.once('secureConnect', r))
    t.teardown(() => socket.destroy())
    const phone = new TlsPhone(socket, 'alice', USERS.alice.password, '127.0.0.1')
    t.equal(await phone.register(), 200, 'alice registers over TLS')
    const line = await logs!.waitFor(/certificate in use/)
    const notAfter = /not_after=(\S+)/.exec(line)?.[1]
    const cert = socket.getPeerCertificate()
    const cn = String(cert.subject.CN)
    t.equal(new Date(cert.valid_to).toISOString(), new Date(notAfter!).toISOString(), `served: ${cn}, the log: ${line}`)
    t.match(line, new RegExp(`names=\\S*${cn}`))
  })

  t.test('`docker compose stop` with a call up: the call goes on, new calls are refused, exit 0 in time', async (t) => {
    // Not pbx.phone: its unregistration when the test ends would wait out SIP's 32 s timer on a
    // PBX that is gone by then.
    const bobPort = await freePort()
    const reg = await pbx.run({ scenario: 'uac-register.xml', port: bobPort, auth: pbx.auth('bob') })
    t.equal(finalResponses(reg, 'REGISTER').at(-1), 200, reg.summary)
    const bob = await pbx.start({ scenario: 'uas-answer-wait.xml', port: bobPort })
    const from = logs!.lines.length
    const call = pbx.start({
      scenario: 'uac-call-6s.xml',
      port: await freePort(),
      auth: pbx.auth('alice'),
      keys: { from: 'alice', to: USERS.bob.number },
    })
    await until(
      'the call is up',
      async () => ((await rx('core show channels count')).match(/(\d+) active call/)?.[1] !== '0' ? true : undefined),
      20_000,
    )
    const stopped = compose(['stop'], { reject: false, all: true })
    await logs!.waitFor(/new calls refused/, 20_000, from)
    const refused = await pbx.call('alice', USERS.bob.number, { port: await freePort() })
    t.ok((finalResponses(refused, 'INVITE').at(-1) ?? 0) >= 400, `a new call is refused\n${refused.summary}`)
    const caller = await (await call).done
    t.equal(caller.code, 0, `the call ran to its end\n${caller.summary}`)
    t.same(requests(caller, 'BYE'), [], 'the PBX did not hang up on it')
    await bob.done
    t.equal((await stopped).exitCode, 0)
    t.equal(await docker(['inspect', '-f', '{{.State.ExitCode}}', container]), '0', 'the container exits 0, not killed')
  })

  t.test('`docker run --rm` of the image: --help works; a bad setting exits 78 naming it', async (t) => {
    const image = 'privatedial-test:upgraded'
    t.match(await docker(['run', '--rm', image, 'privatedial', '--help']), /SIP_PORT/)
    t.match(await docker(['run', '--rm', image, 'minivm-send', '--help']), /minivm-send/)
    const bad = `${name}-bad`
    const code = await docker(['run', '--name', bad, '-e', 'SIP_PORT=99999', image], { reject: false }).then(() =>
      docker(['inspect', '-f', '{{.State.ExitCode}}', bad]),
    )
    t.teardown(() => docker(['rm', '--force', '--volumes', bad], { reject: false }))
    t.equal(code, '78', 'exit 78: configuration error')
    t.match(await docker(['logs', bad], { all: true }), /SIP_PORT.*99999/, 'the log names the variable and its value')
  })
}
