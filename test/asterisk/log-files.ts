// Asterisk's log files on the volume stay bounded: past LOG_FILE_MAX_MB Asterisk rotates them
// and only LOG_FILE_KEEP rotated files stay. Against a real Asterisk, its security file filled by
// sipp's failed registrations.
import t from 'tap'
import { readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { beyondKeep, logFiles, logFilesService } from '../../src/asterisk/log-files.ts'
import { memoryLogger } from '../../src/base/log.ts'
import { parseConf } from '../../src/config/conf.ts'
import { readSettings } from '../../src/config/settings.ts'
import { freePort, startTestPbx } from '../helpers/asterisk.ts'
import { findTools, runSipp } from '../helpers/sipp.ts'
import { waitFor } from '../helpers/wait-for.ts'

t.test('the files logger.conf writes', async (t) => {
  const conf = parseConf(
    '[general]\nrotatestrategy = rotate\n[logfiles]\nconsole => notice,security\nsecurity => security\nmessages => notice\nsyslog.local0 => warning\n/abs/full.log => verbose\nsecurity => debug\n',
  )
  t.same(logFiles(conf, '/var/log/asterisk'), [
    '/var/log/asterisk/security',
    '/var/log/asterisk/messages',
    '/abs/full.log',
  ])
})

t.test('rotated files past the kept number, oldest first to go', async (t) => {
  const siblings = [
    { name: 'security', mtimeMs: 50 },
    { name: 'security.0', mtimeMs: 40 },
    { name: 'security.1', mtimeMs: 30 },
    { name: 'security.2', mtimeMs: 20 },
    { name: 'security.1764577703', mtimeMs: 10 },
    { name: 'security.conf', mtimeMs: 1 },
    { name: 'messages.0', mtimeMs: 1 },
  ]
  t.same(beyondKeep('/log/security', siblings, 2), ['/log/security.2', '/log/security.1764577703'])
  t.same(beyondKeep('/log/security', siblings, 0).length, 4, 'keep 0: every rotated file goes')
  t.same(beyondKeep('/log/security', siblings, 10), [])
})

const tools = findTools()
t.test(
  'a flood of failed logins does not grow the security file past the limit',
  { skip: typeof tools === 'string' ? tools : false },
  async (t) => {
    if (typeof tools === 'string') return
    const listeners: ((line: string) => void)[] = []
    const pbx = await startTestPbx(tools.asterisk, { onLine: (l) => listeners.forEach((f) => f(l)) })
    t.teardown(() => pbx.stop())
    const logDir = join(pbx.dir, 'log')
    const { settings } = readSettings({ LOG_FILE_MAX_MB: '1', LOG_FILE_KEEP: '1' }, { readFile: () => '' })
    const log = memoryLogger('logfiles', 'info')
    const service = logFilesService()
    await service.start({
      settings,
      confDir: join(pbx.dir, 'etc'),
      log,
      asterisk: { onLine: (l) => void listeners.push(l), onReady: () => undefined, rx: pbx.rx, booted: () => true },
      signal: new AbortController().signal,
    })
    t.teardown(() => service.stop(Date.now() + 5000))
    const rotations = () => log.lines.filter((l) => /rotated Asterisk's log files \(security \d/.test(l)).length
    // Each sipp call is an unknown account's REGISTER and its retry: ~2 KB of security events.
    for (let batch = 0; batch < 30 && rotations() < 2; batch++)
      await runSipp(tools.sipp, {
        scenario: 'uac-register.xml',
        target: pbx.target,
        port: await freePort(),
        auth: { user: 'nobody', password: 'x' },
        calls: 200,
        rate: 200,
      })
    await waitFor(`two rotations\n${log.lines.join('\n')}`, () => rotations() >= 2, 30_000)
    const files = (await readdir(logDir)).filter((f) => f.startsWith('security')).sort()
    t.same(files, ['security', 'security.0'], 'the file and one rotated copy (LOG_FILE_KEEP=1)')
    t.ok((await stat(join(logDir, 'security.0'))).size > 2 ** 20, 'the rotated copy holds what went past the limit')
    t.match(log.lines.join('\n'), /removed 1 older ones/, 'the older copy was removed, and the log says so')
    t.ok((await stat(join(logDir, 'security'))).size < 2 ** 20, 'Asterisk writes on in a fresh file')
  },
)
