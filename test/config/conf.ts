import t from 'tap'
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { ConfSyntaxError } from '../../src/base/errors.ts'
import {
  directives,
  getValues,
  parseConf,
  printConf,
  resolveValues,
  sections,
  setValue,
  setValues,
} from '../../src/config/conf.ts'

// Snippets as the spec (seed) shows them, plus the constructs users write.
const seedEndpoint = `[itsp:mydoe](w_trunk)
remote_hosts = sip.mydoe.com
sends_auth = yes
sends_registrations = yes
outbound_auth/username = username
outbound_auth/password = password

[w_term:mydoe](!,w_term_io)
endpoint/set_var = TRUNK_ENDPOINT=itsp:mydoe
endpoint/set_var = WEBSMS_INDEX=
[john.doe](w_term:mydoe)
hint_exten = +12025550160
endpoint/callerid = John Doe <+12025550160>
endpoint/mailboxes = john.doe@example.com
inbound_auth/username = john.doe
inbound_auth/password = password
`
const seedDialplan = `[dp_entry_call_inout](+)
include => dp_lookup
include => dp_ivr_recgreet
include => dp_call_inout
[dp_lookup]
; hints are placed here see hint_exten in pjsip_wizard.conf
exten => _0ZXXXXXX.,1,Goto(\${CONTEXT},+\${GLOBAL(CONTRY_CODE)}\${EXTEN:1},1)
exten => _ZXXXXXX.,1,Goto(\${CONTEXT},+\${EXTEN},1)
[dp_call_inout]
exten => _[+0-9].,1,NoOp()
same => n,Gosub(sub_dial_term,s,1(\${HINT}))
same => n,Hangup()
`
const seedTransport = `[t_wan](!)
type = transport
bind = 0.0.0.0:5560
domain = example.com
external_signaling_address = sip.example.com
external_media_address = sip.example.com
[tls](t_wan)
bind = 0.0.0.0:5561
cert_file = /etc/ssl/asterisk/cert.pem
priv_key_file = /etc/ssl/asterisk/priv_key.pem
`
const constructs = `;-- a block comment
   spanning lines [not a section] key = not an entry
--;
#include "extensions_local.conf"
#tryinclude optional.conf
#exec /bin/echo hello
[general] ; trailing comment
key=value
spaced   =   value with spaces   ; comment
escaped = a\\;b ; only the escaped semicolon stays
nested = x ;-- inline ;-- nested --; still comment --; y
;------------------------------------ a ruler, not a block comment
ruler = after ;--- also not a block comment
[tpl](!)
[multi](tpl,other)
[plus](+)
\t
[crlf]\r
a = 1\r
`

const cases: [string, string][] = [
  ['seed pjsip_endpoint.conf', seedEndpoint],
  ['seed extensions.conf', seedDialplan],
  ['seed pjsip_transport.conf', seedTransport],
  ['every construct', constructs],
  ['no final newline', '[a]\nb = c'],
  ['empty file', ''],
  ['CRLF file', '[a]\r\nb = c\r\n'],
]

t.test('printing an unedited parse gives the same bytes', async (t) => {
  for (const [name, text] of cases) t.equal(printConf(parseConf(text, name)), text, name)
})

t.test('every file shipped in rootfs round-trips', async (t) => {
  const dir = join(import.meta.dirname, '../../rootfs/etc/asterisk')
  const files = readdirSync(dir).filter((f) => f.endsWith('.conf'))
  t.ok(files.length >= 7, `the suite ships its files (found ${files.length})`)
  for (const f of files) {
    const text = readFileSync(join(dir, f), 'utf8')
    t.equal(printConf(parseConf(text, f)), text, f)
  }
})

t.test('reads what Asterisk reads', async (t) => {
  const doc = parseConf(constructs, 'c.conf')
  const byName = Object.fromEntries(sections(doc).map((s) => [s.name, s]))
  t.same(Object.keys(byName), ['general', 'tpl', 'multi', 'plus', 'crlf'], 'block comment hides its lines')
  t.same(getValues(doc, 'general', 'key'), ['value'])
  t.same(getValues(doc, 'general', 'spaced'), ['value with spaces'])
  t.same(getValues(doc, 'general', 'escaped'), ['a;b'], '\\; is a literal semicolon')
  t.same(getValues(doc, 'general', 'nested'), ['x  y'], 'nested block comments end where the outer one does')
  t.same(getValues(doc, 'general', 'ruler'), ['after'], ';--- opens no block comment, as in Asterisk')
  t.equal(byName.tpl!.isTemplate, true)
  t.same(byName.multi!.templates, ['tpl', 'other'])
  t.equal(byName.plus!.extend, true)
  t.same(getValues(doc, 'crlf', 'a'), ['1'], 'CR is not part of the value')
  t.same(
    directives(doc).map((d) => [d.kind, d.target, d.line]),
    [
      ['include', 'extensions_local.conf', 4],
      ['tryinclude', 'optional.conf', 5],
      ['exec', '/bin/echo hello', 6],
    ],
  )

  const dp = parseConf(seedDialplan)
  const lookup = sections(dp).find((s) => s.name === 'dp_lookup')!
  t.same(
    lookup.entries.map((e) => [e.key, e.op]),
    [
      ['exten', '=>'],
      ['exten', '=>'],
    ],
  )
  const call = sections(dp).find((s) => s.name === 'dp_call_inout')!
  t.same(
    call.entries.map((e) => e.key),
    ['exten', 'same', 'same'],
    'same => lines kept in order',
  )
  t.equal(call.entries[1]!.value, 'n,Gosub(sub_dial_term,s,1(${HINT}))')

  const ep = parseConf(seedEndpoint)
  t.same(
    getValues(ep, 'w_term:mydoe', 'endpoint/set_var'),
    ['TRUNK_ENDPOINT=itsp:mydoe', 'WEBSMS_INDEX='],
    'repeated keys and = inside values',
  )
  const tpl = sections(ep).find((s) => s.name === 'w_term:mydoe')!
  t.equal(tpl.isTemplate, true)
  t.same(tpl.templates, ['w_term_io'], '(!,tpl) is a template that inherits')
})

t.test('syntax errors name file and line', async (t) => {
  const bad: [string, number, RegExp][] = [
    ['[general]\nnovalue\n', 2, /expected `key = value`/],
    ['key = outside\n', 1, /outside any \[section\]/],
    ['[open\n', 1, /no closing '\]'/],
    ['[a](x,)\n', 1, /empty template name/],
    ['[a] junk\n', 1, /expected `\(options\)`/],
    ['[a]\n;-- never closed\nb = c\n', 2, /never closed/],
    ['[a]\n#includ x\n', 2, /unknown directive/],
    ['[a]\n= v\n', 2, /missing key/],
  ]
  for (const [text, line, re] of bad) {
    const err = t.throws(() => parseConf(text, 'x.conf')) as unknown
    t.ok(err instanceof ConfSyntaxError, JSON.stringify(text))
    if (err instanceof ConfSyntaxError) {
      t.equal(err.line, line, `${JSON.stringify(text)} line`)
      t.match(err.message, new RegExp(`^x\\.conf:${line}: `))
      t.match(err.message, re)
    }
  }
})

t.test('an edit touches only the line it targets', async (t) => {
  const doc = parseConf(seedTransport)
  t.equal(setValue(doc, 'tls', 'bind', '0.0.0.0:6061'), true)
  t.equal(printConf(doc), seedTransport.replace('0.0.0.0:5561', '0.0.0.0:6061'))
  t.equal(setValue(doc, 'tls', 'bind', '0.0.0.0:6061'), false, 'setting the same value again changes nothing')

  const commented = '[general]\nmailcmd   =  old value ; keep me\n; footer\n'
  const d2 = parseConf(commented)
  setValue(d2, 'general', 'mailcmd', 'new value')
  t.equal(printConf(d2), '[general]\nmailcmd   =  new value ; keep me\n; footer\n', 'spacing and trailing comment kept')

  const crlf = parseConf('[a]\r\nb = 1\r\n')
  setValue(crlf, 'a', 'b', '2')
  setValue(crlf, 'a', 'c', '3')
  t.equal(printConf(crlf), '[a]\r\nb = 2\r\nc = 3\r\n', 'CRLF files stay CRLF')
})

t.test('adding keys and sections', async (t) => {
  const doc = parseConf('[general]\nrtpstart=10000\n\n; next\n[other]\nx=1\n')
  setValue(doc, 'general', 'rtpend', '10099')
  t.equal(
    printConf(doc),
    '[general]\nrtpstart=10000\nrtpend=10099\n\n; next\n[other]\nx=1\n',
    "added after the last entry, in the file's spelling",
  )
  setValue(doc, 'globals', 'CONTRY_CODE', '46')
  t.equal(
    printConf(doc),
    '[general]\nrtpstart=10000\nrtpend=10099\n\n; next\n[other]\nx=1\n\n[globals]\nCONTRY_CODE = 46\n',
    'missing section added at the end',
  )
  const bare = parseConf('[a]\nb = 1')
  setValue(bare, 'c', 'd', 'e')
  t.equal(printConf(bare), '[a]\nb = 1\n\n[c]\nd = e', 'no final newline stays so')
  const empty = parseConf('')
  setValue(empty, 'general', 'k', 'v')
  t.equal(printConf(empty), '[general]\nk = v\n')
  t.same(getValues(parseConf(printConf(doc)), 'globals', 'CONTRY_CODE'), ['46'], 'what was added reads back')
})

t.test('repeated keys', async (t) => {
  const doc = parseConf('[t](!)\nlocal_net = 10.0.0.0/8\nlocal_net = 192.168.0.0/16 ; lan\nbind = x\n')
  setValues(doc, 't', 'local_net', ['172.16.0.0/12'])
  t.equal(printConf(doc), '[t](!)\nlocal_net = 172.16.0.0/12\nbind = x\n', 'surplus occurrences removed')
  setValues(doc, 't', 'local_net', ['172.16.0.0/12', '10.0.0.0/8', '192.168.0.0/16'])
  t.equal(
    printConf(doc),
    '[t](!)\nlocal_net = 172.16.0.0/12\nlocal_net = 10.0.0.0/8\nlocal_net = 192.168.0.0/16\nbind = x\n',
  )
  t.same(getValues(doc, 't', 'local_net'), ['172.16.0.0/12', '10.0.0.0/8', '192.168.0.0/16'])
  t.equal(sections(doc)[0]!.entries.find((e) => e.key === 'bind')!.line, 5, 'line numbers follow the edit')
})

t.test('hostile values are written so Asterisk reads them back unchanged', async (t) => {
  const values = ['a;b', 'x => y', '"quoted"', 'ünïcödé ☎ 😀', '[not a section]', 'trailing\\', 'semi;;colons;']
  for (const v of values) {
    const doc = parseConf('[general]\nk = old\n')
    setValue(doc, 'general', 'k', v)
    t.same(getValues(parseConf(printConf(doc)), 'general', 'k'), [v.trim()], JSON.stringify(v))
  }
  for (const v of ['two\nlines', 'cr\rhere', 'nul\0']) {
    t.throws(() => setValue(parseConf('[g]\n'), 'g', 'k', v), /one line without control characters/, JSON.stringify(v))
  }
})

t.test('template inheritance resolves the effective value', async (t) => {
  const wizard = parseConf(`[w_term_io](!)
endpoint/context = dp_entry_call_inout
endpoint/allow = !all,ulaw
[w_term_i](!,w_term_io)
endpoint/context = dp_entry_call_in
`)
  const ep = parseConf(seedEndpoint.replace('[w_term:mydoe](!,w_term_io)', '[w_term:mydoe](!,w_term_i)'))
  t.same(resolveValues([wizard, ep], 'john.doe', 'endpoint/context'), ['dp_entry_call_inout', 'dp_entry_call_in'])
  t.equal(
    resolveValues([wizard, ep], 'john.doe', 'endpoint/context').at(-1),
    'dp_entry_call_in',
    'nearest template wins',
  )
  t.same(resolveValues([wizard, ep], 'john.doe', 'endpoint/set_var'), ['TRUNK_ENDPOINT=itsp:mydoe', 'WEBSMS_INDEX='])
  t.same(resolveValues([wizard, ep], 'john.doe', 'hint_exten'), ['+12025550160'])
  t.throws(() => resolveValues([parseConf('[a](b)\n[b](a)\n')], 'a', 'k'), /template cycle: a -> b -> a/)
})
