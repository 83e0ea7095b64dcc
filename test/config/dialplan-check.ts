import t from 'tap'
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { readConfTree } from '../../src/config/files.ts'
import { checkDialplan, dialplanProblems } from '../../src/config/dialplan-check.ts'
import { SHIPPED_CONFIG } from '../helpers/asterisk.ts'

const FIXTURE_ENDPOINTS = join(import.meta.dirname, '../fixtures/sipp/pjsip_endpoint.conf')

/** A copy of the shipped config, with users (the test PBX's) unless `shipped`, after `change`. */
async function problemsOf(
  change: (dir: string) => Promise<void> = async () => {},
  shipped = false,
  which: 'problems' | 'warnings' = 'problems',
): Promise<string[]> {
  const dir = await mkdtemp(join(tmpdir(), 'pd-dialplan-'))
  try {
    await cp(SHIPPED_CONFIG, dir, { recursive: true })
    if (!shipped) await cp(FIXTURE_ENDPOINTS, join(dir, 'pjsip_endpoint.conf'))
    await change(dir)
    const trees = new Map()
    for (const f of ['extensions.conf', 'pjsip.conf', 'pjsip_wizard.conf'])
      trees.set(f, (await readConfTree(dir, f)).docs)
    return which === 'warnings' ? checkDialplan(trees).warnings : dialplanProblems(trees)
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
}

const replace = (file: string, from: string, to: string) => async (dir: string) => {
  const text = await readFile(join(dir, file), 'utf8')
  if (!text.includes(from)) throw new Error(`${file} has no ${JSON.stringify(from)} to break`)
  await writeFile(join(dir, file), text.replace(from, to))
}
const append = (file: string, text: string) => async (dir: string) =>
  writeFile(join(dir, file), `${await readFile(join(dir, file), 'utf8')}\n${text}`)

t.test('the shipped dial plan has no problems, alone or with users', async (t) => {
  t.same(await problemsOf(undefined, true), [])
  t.same(await problemsOf(), [])
})

t.test('each kind of broken reference is found, with its file and line', async (t) => {
  const cases: [string, (dir: string) => Promise<void>, RegExp][] = [
    [
      'a Gosub to a missing context',
      replace('extensions.conf', 'Gosub(sub_dial_term,s,1(${HINT}))', 'Gosub(sub_dial_trm,s,1(${HINT}))'),
      /^extensions\.conf:\d+: Gosub to sub_dial_trm,s,1: no context \[sub_dial_trm\]$/,
    ],
    [
      'a GotoIf to a missing label',
      replace('extensions.conf', '?unknown)', '?unknwon)'),
      /^extensions\.conf:\d+: GotoIf to unknwon: no priority label unknwon in _\[\+0-9\]\.@dp_call_in$/,
    ],
    [
      'a hangup handler in a missing extension',
      replace('extensions.conf', 'sub_voicemail,mail,1(', 'sub_voicemail,mial,1('),
      /^extensions\.conf:\d+: hangup handler to sub_voicemail,mial,1: no extension mial in \[sub_voicemail\]$/,
    ],
    [
      'a Goto to an extension the context lacks',
      append('extensions_local.conf', '[dp_entry_call_inout](+)\nexten => 123,1,Goto(dp_call_in,s,1)\n'),
      /^extensions_local\.conf:\d+: Goto to dp_call_in,s,1: no extension s in \[dp_call_in\]$/,
    ],
    [
      'an include of a missing context',
      replace('extensions.conf', 'include => dp_call_in\n', 'include => dp_call_inn\n'),
      /^extensions\.conf:\d+: include => dp_call_inn: no such context$/,
    ],
    [
      'additions to a context that does not exist',
      append('extensions_local.conf', '[dp_entry_cal_in](+)\nexten => 123,1,NoOp()\n'),
      /^extensions_local\.conf:\d+: \[dp_entry_cal_in\]\(\+\) adds to a context that is not defined above it$/,
    ],
    [
      'an endpoint template naming a missing context',
      replace('pjsip_wizard.conf', 'endpoint/context = dp_entry_call_in\n', 'endpoint/context = dp_entry_call_inn\n'),
      /^pjsip_endpoint\.conf:\d+: \[itsp:test\] endpoint\/context = dp_entry_call_inn: no such context in the dial plan$/,
    ],
    [
      'a plain endpoint naming a missing context',
      replace('pjsip.conf', 'message_context = dp_entry_text_in', 'message_context = dp_entry_txt_in'),
      /^pjsip\.conf:\d+: \[websms\] message_context = dp_entry_txt_in: no such context in the dial plan$/,
    ],
    [
      'a user whose TRUNK_ENDPOINT is no endpoint',
      replace('pjsip_endpoint.conf', 'TRUNK_ENDPOINT=itsp:test\n', 'TRUNK_ENDPOINT=itsp:tset\n'),
      /^pjsip_endpoint\.conf:\d+: \[alice\] TRUNK_ENDPOINT=itsp:tset: no such endpoint$/,
    ],
  ]
  for (const [what, change, expected] of cases) {
    const problems = await problemsOf(change)
    t.ok(
      problems.some((p) => expected.test(p)),
      `${what}: ${JSON.stringify(problems)}`,
    )
  }
})

t.test('a global read but not defined is a warning: Asterisk reads it as empty', async (t) => {
  const change = replace('extensions_local.conf', 'DIAL_TIMEOUT = 30\n', '')
  t.same(await problemsOf(change), [], 'no problem: an upgraded volume with an older extensions_local.conf starts')
  t.match(await problemsOf(change, false, 'warnings'), [
    /^extensions\.conf:\d+: reads global DIAL_TIMEOUT, which \[globals\] does not define, so it is empty/,
  ])
})

t.test('users sharing a template are each reported at their own line; their own settings count', async (t) => {
  const problems = await problemsOf(
    append(
      'pjsip_endpoint.conf',
      [
        '[w_term:many](!,w_term_io)',
        'endpoint/set_var = TRUNK_ENDPOINT=itsp:gone',
        '',
        '[u1](w_term:many)',
        'hint_exten = 201',
        '',
        '[u2](w_term:many)',
        'hint_exten = 202',
        '',
        '[u3](w_term:many)',
        'hint_exten = 203',
        'endpoint/context = nowhere',
        '',
        '[u4](w_term:many)',
        'hint_exten = 204',
        'endpoint/set_var = TRUNK_ENDPOINT=itsp:test',
        '',
      ].join('\n'),
    ),
  )
  const mine = problems.filter((p) => /\[u\d\]/.test(p)).map((p) => p.replace(/^pjsip_endpoint\.conf:\d+: /, ''))
  t.same(mine.sort(), [
    '[u1] TRUNK_ENDPOINT=itsp:gone: no such endpoint',
    '[u2] TRUNK_ENDPOINT=itsp:gone: no such endpoint',
    '[u3] TRUNK_ENDPOINT=itsp:gone: no such endpoint',
    '[u3] endpoint/context = nowhere: no such context in the dial plan',
  ])
  const lines = problems.filter((p) => p.includes('itsp:gone')).map((p) => /:(\d+):/.exec(p)![1])
  t.equal(new Set(lines).size, 3, `each user at its own line: ${lines.join(', ')}`)
})

t.test('what Asterisk reads the same way raises nothing', async (t) => {
  const lines = [
    // Targets only known at run time.
    'exten => 124,1,Goto(${CONTEXT},+12025550160,1)',
    // Separators inside quotes and expressions are not separators; both branches exist.
    'exten => 125,1,GotoIf($["${X}" = "a?b:c"]?dp_call_in,+1234,1:dp_lookup,0012345678,1)',
    // Gosub arguments with escaped commas and semicolons, and empty ones.
    'exten => 126,1,Gosub(sub_dial_term,s,1(a\\,b\\;c,,))',
    'exten => 127,hint,PJSIP/alice',
    // A global a line sets is one the dial plan may read.
    'exten => 128,1,Set(GLOBAL(SEEN)=1)',
    ' same => n,Set(x=${GLOBAL(SEEN)})',
    'exten => 129,1(start),NoOp()',
    ' same => n,Goto(start)',
    // Found through the context's includes, as Asterisk finds it.
    'exten => 130,1,Goto(dp_entry_call_in,+12025550160,1)',
    'include => dp_lookup,*,*,*,*',
  ]
  t.same(await problemsOf(append('extensions_local.conf', `[dp_entry_call_inout](+)\n${lines.join('\n')}\n`)), [])
})

t.test('a `same =>` with no extension before it is reported, not a crash', async (t) => {
  const problems = await problemsOf(append('extensions_local.conf', '[dp_entry_call_inout](+)\n same => n,NoOp()\n'))
  t.match(problems, [/^extensions_local\.conf:\d+: `same =>` before any `exten =>` in \[dp_entry_call_inout\]$/])
})
