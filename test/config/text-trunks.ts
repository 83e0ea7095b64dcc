import t from 'tap'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { memoryLogger } from '../../src/base/log.ts'
import { parseConf, sections } from '../../src/config/conf.ts'
import { textTrunksConf, textTrunkName, writeTextTrunks } from '../../src/config/text-trunks.ts'

const WIZARD = `[w_trunk](!)
type = wizard
endpoint/context = dp_entry_call_in
#include pjsip_endpoint.conf
`
// The spec's trunk, one with its own transport and proxy, one without a colon, and users.
const ENDPOINTS = `[itsp:mydoe](w_trunk)
remote_hosts = sip.mydoe.com
sends_auth = yes
sends_registrations = yes
outbound_auth/username = username
outbound_auth/password = p;a"ss

[itsp:other](w_trunk)
remote_hosts = 192.0.2.7:5080
transport = udp
endpoint/outbound_proxy = sip:proxy.example.com\\;lr
endpoint/from_domain = example.com

[plain](w_trunk)
remote_hosts = sip.plain.example

[w_term:mydoe](!,w_trunk)
endpoint/set_var = TRUNK_ENDPOINT=itsp:mydoe

[john.doe](w_term:mydoe)
hint_exten = +12025550160
`

t.test('each trunk named with a colon gets a twin with its AOR, auth, transport and proxy', async (t) => {
  const docs = [parseConf(WIZARD, 'pjsip_wizard.conf'), parseConf(ENDPOINTS, 'pjsip_endpoint.conf')]
  const twins = sections(parseConf(textTrunksConf(docs), 'pjsip_text_trunks.conf')).map((s) => s.name)
  t.same(twins, ['text-itsp-mydoe', 'text-itsp-other'], 'no twin for a name without a colon, a template or a user')
  const text = textTrunksConf(docs)
  t.match(text, /\[text-itsp-mydoe\]\ntype = endpoint\naors = itsp:mydoe\noutbound_auth = itsp:mydoe-oauth\n/)
  t.match(
    text,
    /\[text-itsp-other\]\ntype = endpoint\naors = itsp:other\ntransport = udp\noutbound_proxy = sip:proxy\.example\.com\\;lr\nfrom_domain = example\.com\n/,
  )
  t.notMatch(text, /p;a"ss|username/, 'no credentials: it names the auth the wizard made')
  t.equal(textTrunkName('itsp:my:doe'), 'text-itsp-my-doe', 'as the dial plan names it, REPLACE(trunk,:,-)')
})

t.test('the file is written when the trunks change, and only then', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'pd-twins-'))
  writeFileSync(join(dir, 'pjsip_wizard.conf'), WIZARD)
  writeFileSync(join(dir, 'pjsip_endpoint.conf'), ENDPOINTS)
  const log = memoryLogger()
  t.equal(await writeTextTrunks(dir, log), true)
  t.match(log.lines.join('\n'), /wrote pjsip_text_trunks\.conf .*twins=text-itsp-mydoe,text-itsp-other/)
  t.equal(await writeTextTrunks(dir, log), false, 'unchanged: not written again')
  writeFileSync(join(dir, 'pjsip_endpoint.conf'), '; no one yet\n')
  t.equal(await writeTextTrunks(dir, log), true)
  t.notMatch(readFileSync(join(dir, 'pjsip_text_trunks.conf'), 'utf8'), /^\[/m, 'a removed trunk loses its twin')
})
