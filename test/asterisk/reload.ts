import t from 'tap'
import { memoryLogger } from '../../src/base/log.ts'
import { reloadChanged, reloadCommand, reloadCommands } from '../../src/asterisk/reload.ts'

t.test('each file reloads the narrowest thing that reads it', async (t) => {
  t.equal(reloadCommand('/etc/asterisk/pjsip_endpoint.conf'), 'module reload res_pjsip.so')
  t.equal(reloadCommand('pjsip_wizard.conf'), 'module reload res_pjsip.so')
  t.equal(reloadCommand('extensions_local.conf'), 'dialplan reload')
  t.equal(reloadCommand('minivm.conf'), 'module reload app_minivm.so')
  t.equal(reloadCommand('rtp.conf'), 'module reload res_rtp_asterisk.so')
  t.equal(reloadCommand('something_else.conf'), 'core reload')
  t.same(
    reloadCommands(['pjsip_endpoint.conf', 'pjsip_wizard.conf', 'extensions.conf']),
    ['dialplan reload', 'module reload res_pjsip.so'],
    'one reload per module',
  )
})

t.test('a broken file is not reloaded and the log says where it is broken', async (t) => {
  const log = memoryLogger('reload')
  const sent: string[] = []
  const ok = await reloadChanged(['/c/pjsip_endpoint.conf'], {
    check: async () => ['pjsip_endpoint.conf:7: expected `key = value`'],
    rx: async (c) => (sent.push(c), ''),
    log,
  })
  t.equal(ok, false)
  t.same(sent, [])
  t.match(
    log.lines.join('\n'),
    /ERROR reload: pjsip_endpoint\.conf:7: expected[\s\S]*Asterisk keeps its current configuration/,
  )
})

t.test('a good change reloads and logs how long it took', async (t) => {
  const log = memoryLogger('reload')
  const sent: string[] = []
  let clock = 0
  const ok = await reloadChanged(['/c/pjsip_endpoint.conf'], {
    check: async () => [],
    rx: async (c) => ((clock += 42), sent.push(c), ''),
    log,
    now: () => clock,
  })
  t.equal(ok, true)
  t.same(sent, ['module reload res_pjsip.so'])
  t.match(
    log.lines.join('\n'),
    /reloaded after a change to pjsip_endpoint\.conf command="module reload res_pjsip\.so" ms=42/,
  )
})

t.test('a check that throws (a symlink loop, an unreadable include) is a logged problem, not a crash', async (t) => {
  const log = memoryLogger('reload')
  const sent: string[] = []
  const ok = await reloadChanged(['/c/pjsip_endpoint.conf'], {
    check: () => Promise.reject(new Error('ELOOP: too many symbolic links encountered, open /c/loop.conf')),
    rx: async (c) => (sent.push(c), ''),
    log,
  })
  t.equal(ok, false)
  t.same(sent, [], 'nothing reloaded')
  t.match(
    log.lines.join('\n'),
    /ERROR reload: checking the config after a change to pjsip_endpoint\.conf failed: ELOOP/,
  )
})

t.test('a reload Asterisk ignores because another is under way is asked again until it is taken', async (t) => {
  const log = memoryLogger('reload')
  const answers = ['A module reload request is already in progress; please be patient', '']
  const sent: string[] = []
  const ok = await reloadChanged(['/c/pjsip_endpoint.conf'], {
    check: async () => [],
    rx: async (c) => (sent.push(c), answers.shift() ?? ''),
    log,
  })
  t.equal(ok, true)
  t.same(sent, ['module reload res_pjsip.so', 'module reload res_pjsip.so'], 'asked twice')
})
