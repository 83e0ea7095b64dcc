import t from 'tap'
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { checkConfDir, templateProblems } from '../src/check.ts'
import { parseConf } from '../src/config/conf.ts'

function dirWith(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'pd-check-'))
  for (const [f, text] of Object.entries(files)) writeFileSync(join(dir, f), text)
  return dir
}

t.test('a valid dir has no problems', async (t) => {
  const dir = dirWith({
    'pjsip.conf': '#include pjsip_transport.conf\n[global]\ntype = global\n',
    'pjsip_transport.conf': '[t_wan](!)\ntype = transport\n[udp](t_wan)\nprotocol = udp\n',
    'extensions.conf': '#tryinclude not_there.conf\n[globals]\n',
  })
  t.same(await checkConfDir(dir), { problems: [], warnings: [], files: 3, endpoints: 0 })
})

t.test('problems are found with file:line', async (t) => {
  const cases: [Record<string, string>, RegExp][] = [
    [{ 'rtp.conf': '[general]\nrtpstart 10000\n' }, /^rtp\.conf:2: expected `key = value`/],
    [
      { 'pjsip_wizard.conf': '[john](w_term_io)\nx = 1\n' },
      /^pjsip_wizard\.conf:1: \[john\] inherits template `w_term_io`, which is not defined/,
    ],
    [
      { 'pjsip_wizard.conf': '[john](w_term_io)\n[w_term_io](!)\n' },
      /^pjsip_wizard\.conf:1: .*defined only further down/,
    ],
    [
      { 'extensions.conf': '[general]\n#include extensions_local.conf\n' },
      /^extensions\.conf:2: #include target `extensions_local\.conf` does not exist/,
    ],
    [
      {
        'pjsip_wizard.conf': '#include pjsip_endpoint.conf\n[w_term_io](!)\n',
        'pjsip_endpoint.conf': '[john](w_term_i)\n',
      },
      /^pjsip_endpoint\.conf:1: \[john\] inherits template `w_term_i`, which is not defined/,
    ],
  ]
  for (const [files, re] of cases) {
    const { problems } = await checkConfDir(dirWith(files))
    t.equal(problems.length, 1, Object.keys(files).join(','))
    t.match(problems[0], re)
  }
})

t.test('the shipped suite passes; dial plan and websms.conf problems are found too', async (t) => {
  const { cpSync } = await import('node:fs')
  const { DEFAULTS_DIR } = await import('../src/config/seed.ts')
  const dir = mkdtempSync(join(tmpdir(), 'pd-check-'))
  cpSync(DEFAULTS_DIR, dir, { recursive: true })
  t.same((await checkConfDir(dir)).problems, [], 'shipped files are clean')
  writeFileSync(
    join(dir, 'extensions_local.conf'),
    '[globals]\nCONTRY_CODE = 1\n\n[dp_entry_call_inout](+)\nexten => 123,1,Goto(dp_nowhere,s,1)\n',
  )
  writeFileSync(join(dir, 'websms.conf'), '[elks]\npreset = nosuchitsp\n')
  const { problems } = await checkConfDir(dir)
  t.ok(
    problems.some((p) => /^extensions_local\.conf:5: .*dp_nowhere/.test(p)),
    `a Goto to a missing context: ${problems.join(' | ')}`,
  )
  t.ok(
    problems.some((p) => /^websms\.conf:\d+: .*nosuchitsp/.test(p)),
    'an unknown preset in websms.conf',
  )
})

t.test('a mailcmd MiniVM would cut short is a problem', async (t) => {
  const ok = `[general]\nmailcmd = minivm-send -H mx.example.com:587 -u u -f ${'x'.repeat(100)}@example.com\n`
  t.same((await checkConfDir(dirWith({ 'minivm.conf': ok }))).problems, [])
  const long = `[general]\nmailcmd = minivm-send -H mx.example.com:587 -P starttls -u voicemail@example.com -f ${'x'.repeat(120)}@example.com\n`
  const { problems } = await checkConfDir(dirWith({ 'minivm.conf': long }))
  t.match(problems, [
    /^minivm\.conf:2: mailcmd is 206 bytes; MiniVM keeps only the first 159 and would run `minivm-send .*x`: shorten it/,
  ])
})

t.test('a template from an included file counts when included above', async (t) => {
  const tpl = parseConf('[w_term_io](!)\n', 'pjsip_wizard.conf')
  const ep = parseConf('[john](w_term_io)\n', 'pjsip_endpoint.conf')
  t.same(templateProblems([tpl, ep]), [])
  t.equal(templateProblems([ep, tpl]).length, 1)
})

t.test('an unreadable config dir is one problem, not a crash', async (t) => {
  const { problems } = await checkConfDir('/nonexistent/pd')
  t.match(problems, [/config dir \/nonexistent\/pd can't be read: ENOENT/])
})

t.test(
  'a directory where a config file should be (a bind mount of a missing host file) is a problem that says so',
  async (t) => {
    const dir = dirWith({ 'pjsip.conf': '[global]\ntype = global\n' })
    mkdirSync(join(dir, 'pjsip_endpoint.conf'))
    const { problems } = await checkConfDir(dir)
    t.same(problems, [
      `${join(dir, 'pjsip_endpoint.conf')} is a directory, not a config file; if it is bind-mounted, create the file on the host (Docker made a directory because there was none) and recreate the container`,
    ])
  },
)

t.test('the trunks and users of pjsip_endpoint.conf are counted, templates not', async (t) => {
  const shipped = await checkConfDir(dirWith({ 'pjsip_endpoint.conf': '; nothing yet\n' }))
  t.equal(shipped.endpoints, 0)
  const users = await checkConfDir(
    dirWith({
      'pjsip_wizard.conf': '[w_term](!)\ntype = wizard\n#include pjsip_endpoint.conf\n',
      'pjsip_endpoint.conf': '[w_term:x](!,w_term)\n[alice](w_term:x)\n[bob](w_term:x)\n',
    }),
  )
  t.same(users, { problems: [], warnings: [], files: 2, endpoints: 2 })
})

t.test("an included file's templates count from where its #include stands", async (t) => {
  // Templates kept in their own file, included at the top of the endpoint file: valid for Asterisk.
  const top = await checkConfDir(
    dirWith({
      'pjsip_wizard.conf': '[w_term](!)\ntype = wizard\n#include pjsip_endpoint.conf\n',
      'pjsip_endpoint.conf': '#include my_templates.conf\n[alice](w_term:x)\n',
      'my_templates.conf': '[w_term:x](!,w_term)\n',
    }),
  )
  t.same(top.problems, [])
  // Included after the user that needs it: Asterisk has not read the template yet.
  const bottom = await checkConfDir(
    dirWith({
      'pjsip_wizard.conf': '[w_term](!)\ntype = wizard\n#include pjsip_endpoint.conf\n',
      'pjsip_endpoint.conf': '[alice](w_term:x)\n#include my_templates.conf\n',
      'my_templates.conf': '[w_term:x](!,w_term)\n',
    }),
  )
  t.same(bottom.problems, [
    'pjsip_endpoint.conf:1: [alice] inherits template `w_term:x`, which is defined only further down; define it above',
  ])
})

t.test('check warns when a user has no trunk for emergency calls, and names them', async (t) => {
  const { cpSync, readFileSync } = await import('node:fs')
  const { DEFAULTS_DIR } = await import('../src/config/seed.ts')
  const fixture = readFileSync(new URL('fixtures/sipp/pjsip_endpoint.conf', import.meta.url), 'utf8')
  const withEndpoints = (endpoints: string, globals = '') => {
    const dir = mkdtempSync(join(tmpdir(), 'pd-check-'))
    cpSync(DEFAULTS_DIR, dir, { recursive: true })
    writeFileSync(join(dir, 'pjsip_endpoint.conf'), endpoints)
    if (globals)
      writeFileSync(
        join(dir, 'extensions_local.conf'),
        `[globals]\nCONTRY_CODE = 1\nDIAL_TIMEOUT = 30\nWEBSMS_API_PORT =\nTEXT_STORE_PORT =\n${globals}`,
      )
    return dir
  }
  t.same((await checkConfDir(withEndpoints(''))).warnings, [], 'no users yet: nothing to warn about')
  // The test users: all but carol (w_term_i) name itsp:test in TRUNK_ENDPOINT; probe has no number.
  const some = await checkConfDir(withEndpoints(fixture))
  t.same(some.problems, [])
  t.match(some.warnings, [
    /^carol can't call emergency numbers: this user has no TRUNK_ENDPOINT and EMERGENCY_TRUNK in extensions_local\.conf is empty/,
  ])
  const noTrunk = fixture.replace(/TRUNK_ENDPOINT=itsp:test/g, 'TRUNK_ENDPOINT=')
  t.match((await checkConfDir(withEndpoints(noTrunk))).warnings, [
    /^no user can call emergency numbers: no user has a TRUNK_ENDPOINT/,
  ])
  const fallback = 'EMERGENCY_NUMBERS = 112,911\nEMERGENCY_TRUNK = itsp:test\n'
  t.same(
    await checkConfDir(withEndpoints(noTrunk, fallback)).then((r) => [r.problems, r.warnings]),
    [[], []],
    'EMERGENCY_TRUNK covers them',
  )
  const wrong = await checkConfDir(
    withEndpoints(fixture, 'EMERGENCY_NUMBERS = 112, 911\nEMERGENCY_TRUNK = itsp:nosuch\n'),
  )
  t.same(wrong.problems, [
    'extensions_local.conf:6: EMERGENCY_NUMBERS must be numbers of 2 to 6 digits separated by commas (no spaces), got `112, 911`',
    'extensions_local.conf:7: EMERGENCY_TRUNK=itsp:nosuch: no such endpoint',
  ])
})
