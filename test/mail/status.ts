import t from 'tap'
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { execa } from 'execa'
import { DEFAULTS_DIR } from '../../src/config/seed.ts'
import { mailStatus } from '../../src/mail/status.ts'
import { failMessage, spoolMessage } from '../../src/mail/spool.ts'
import { SIMPLE } from '../helpers/minivm-send.ts'

/** A copy of the shipped config with this mailcmd, and an empty spool dir beside it. */
function setup(mailcmd?: string) {
  const dir = mkdtempSync(join(tmpdir(), 'pd-mail-status-'))
  const confDir = join(dir, 'etc')
  cpSync(DEFAULTS_DIR, confDir, { recursive: true })
  if (mailcmd) {
    const file = join(confDir, 'minivm.conf')
    writeFileSync(file, readFileSync(file, 'utf8').replace(/^mailcmd\s*=.*$/m, `mailcmd = ${mailcmd}`))
  }
  return { confDir, spool: join(dir, 'outbox') }
}

t.test('the shipped minivm.conf and an empty spool: nothing to say', async (t) => {
  const { confDir, spool } = setup()
  t.same(await mailStatus(confDir, { MINIVM_SPOOL_DIR: spool }), { problems: [], warnings: [] })
})

t.test('a mailcmd minivm-send refuses is a problem naming the file, the line and the flag', async (t) => {
  const { confDir, spool } = setup('minivm-send -H mx.example.com --sender pbx@example.com')
  const { problems } = await mailStatus(confDir, { MINIVM_SPOOL_DIR: spool })
  t.match(problems, [
    new RegExp(
      `^minivm\\.conf:\\d+: mailcmd: minivm-send refuses it \\(Unknown option '--sender'.*\\); each voicemail e-mail waits in ${spool} until it is fixed$`,
    ),
  ])
  const other = setup('/usr/sbin/sendmail -t --whatever')
  t.same((await mailStatus(other.confDir, { MINIVM_SPOOL_DIR: other.spool })).problems, [], 'another mailer is its own')
})

t.test('-u with no password anywhere is a warning; a password in the environment silences it', async (t) => {
  const { confDir, spool } = setup('minivm-send -H mx.example.com -u pbx@example.com')
  const { problems, warnings } = await mailStatus(confDir, { MINIVM_SPOOL_DIR: spool })
  t.same(problems, [])
  t.match(warnings, [/mailcmd logs in as -u pbx@example\.com but there is no password .*sends without login/])
  const withPassword = await mailStatus(confDir, { MINIVM_SPOOL_DIR: spool, SMTP_PASSWORD_FILE: '/run/secrets/x' })
  t.same(withPassword.warnings, [])
})

t.test('mails that wait and mails refused for good are reported with where they are', async (t) => {
  const { confDir, spool } = setup()
  await spoolMessage(spool, Buffer.from(SIMPLE), new Date(Date.UTC(2026, 10, 30, 7, 5, 9)))
  await spoolMessage(spool, Buffer.from(SIMPLE), new Date(Date.UTC(2026, 11, 1, 8, 0, 0)))
  await failMessage(spool, Buffer.from(SIMPLE), new Date())
  const { warnings } = await mailStatus(confDir, { MINIVM_SPOOL_DIR: spool })
  t.match(warnings, [
    `2 voicemail e-mail(s) wait in ${spool} (the oldest since 2026-11-30 07:05:09 UTC): run retries them`,
    `1 voicemail e-mail(s) in ${join(spool, 'failed')} were refused by the mail server for good`,
  ])

  // The way a user sees it: `privatedial check` in the container.
  const cli = new URL('../../bin/privatedial.js', import.meta.url).pathname
  const r = await execa(process.execPath, [cli, 'check'], {
    reject: false,
    env: { PATH: process.env.PATH ?? '', ASTERISK_CONF_DIR: confDir, MINIVM_SPOOL_DIR: spool },
    extendEnv: false,
  })
  t.equal(r.exitCode, 0, 'waiting mail is no configuration error')
  t.match(r.stdout, /WARN  check: 2 voicemail e-mail\(s\) wait in/)
  t.match(r.stdout, /WARN  check: 1 voicemail e-mail\(s\) in \S+\/failed were refused/)
})
