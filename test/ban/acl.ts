import t, { type Test } from 'tap'
import { cp, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { aclAddresses, aclProblem, aclReloader, ACL_FILE, writeAcl } from '../../src/ban/acl.ts'
import { SHIPPED_CONFIG } from '../helpers/asterisk.ts'

const dir = async (t: Test, files: Record<string, string>) => {
  const d = await mkdtemp(join(tmpdir(), 'pd-acl-'))
  t.teardown(() => rm(d, { recursive: true, force: true }))
  for (const [name, text] of Object.entries(files)) await writeFile(join(d, name), text)
  return d
}
const shipped = async (name: string) => readFile(join(SHIPPED_CONFIG, name), 'utf8')

t.test('the ACL file: written whole, read back, empty when nothing is banned', async (t) => {
  const d = await dir(t, {})
  await writeAcl(d, ['203.0.113.5', '2001:db8::7'])
  const text = await readFile(join(d, ACL_FILE), 'utf8')
  t.match(text, /^\[privatedial-bans\]\ntype = acl\ndeny = 203\.0\.113\.5\ndeny = 2001:db8::7\n$/m)
  t.same(await aclAddresses(d), ['203.0.113.5', '2001:db8::7'])
  await writeAcl(d, [])
  t.notMatch(await readFile(join(d, ACL_FILE), 'utf8'), /type = acl/, 'no ACL section at all: nothing refused')
  t.same(await aclAddresses(d), [])
  t.same(await aclAddresses(await dir(t, {})), [], 'no file yet')
})

t.test('the shipped config applies the ACL; an older one says what to add', async (t) => {
  const pjsip = await shipped('pjsip.conf')
  const modules = await shipped('modules.conf')
  t.equal(await aclProblem(await dir(t, { 'pjsip.conf': pjsip, 'modules.conf': modules })), undefined)
  const noInclude = pjsip.replace(/^#tryinclude pjsip_ban\.conf\n/m, '')
  t.not(noInclude, pjsip)
  t.equal(
    await aclProblem(await dir(t, { 'pjsip.conf': noInclude, 'modules.conf': modules })),
    'pjsip.conf does not include pjsip_ban.conf; add the line `#tryinclude pjsip_ban.conf` to it',
  )
  const noModule = modules.replace(/^load => res_pjsip_acl\.so\n/m, '')
  t.not(noModule, modules)
  t.match(
    await aclProblem(await dir(t, { 'pjsip.conf': pjsip, 'modules.conf': noModule })),
    /modules\.conf does not load res_pjsip_acl\.so; add the line `load => res_pjsip_acl\.so`/,
  )
  t.equal(
    await aclProblem(await dir(t, { 'pjsip.conf': pjsip, 'modules.conf': '[modules]\nautoload = yes\n' })),
    undefined,
    'autoload loads it',
  )
  t.match(
    await aclProblem(
      await dir(t, { 'pjsip.conf': pjsip, 'modules.conf': '[modules]\nautoload = yes\nnoload => res_pjsip_acl.so\n' }),
    ),
    /does not load res_pjsip_acl\.so/,
    'unless it is noloaded',
  )
})

t.test(
  'PJSIP is reloaded for the ACL only with a config that passes the check, and again while another reload runs',
  async (t) => {
    const d = await mkdtemp(join(tmpdir(), 'pd-acl-'))
    t.teardown(() => rm(d, { recursive: true, force: true }))
    await cp(SHIPPED_CONFIG, d, { recursive: true })
    const asked: string[] = []
    // Asterisk's CLI as seen during a reload someone else started: refused twice, then done.
    const answers = [
      'A module reload request is already in progress; please be patient\n',
      'A module reload request is already in progress; please be patient\n',
      "Module 'res_pjsip.so' reloaded successfully.\n",
    ]
    const rx = async (c: string) => (asked.push(c), answers.shift() ?? "Module 'res_pjsip.so' reloaded successfully.\n")
    const reload = aclReloader(d, { rx })
    t.equal(await reload(), undefined)
    t.same(asked, Array(3).fill('module reload res_pjsip.so'), 'asked until it was done')

    await writeFile(join(d, 'pjsip_endpoint.conf'), '[half-saved](w_term:nope)\n')
    asked.length = 0
    t.match(await reload(), /the config has 1 problem\(s\), first: pjsip_endpoint\.conf:1: .*w_term:nope/)
    t.same(asked, [], "a half-saved endpoint file is not loaded on the bans' account")
    await writeFile(join(d, 'pjsip_endpoint.conf'), '; fixed\n')
    t.equal(await reload(), undefined, 'once fixed, the reload goes ahead')
    t.same(asked, ['module reload res_pjsip.so'])
  },
)
