// Which trunks register, and what `pjsip show registrations` says of them.
import t from 'tap'
import { parseConf } from '../../src/config/conf.ts'
import { describeRegistrations, listedRegistrations, registeringTrunks } from '../../src/asterisk/registrations.ts'

t.test('the trunks that register are the wizard sections with sends_registrations, through templates', async (t) => {
  const wizard = parseConf(
    `[w_trunk](!)\ntype = wizard\n[w_reg](!,w_trunk)\nsends_registrations = yes\n` +
      `[itsp:a](w_reg)\n[itsp:b](w_trunk)\nsends_registrations = yes\n[itsp:c](w_trunk)\n` +
      `[itsp:d](w_reg)\nsends_registrations = no\n[alice]\ntype = endpoint\nsends_registrations = yes\n`,
    'pjsip_wizard.conf',
  )
  t.same(registeringTrunks([wizard]), ['itsp:a', 'itsp:b'])
})

t.test('`pjsip show registrations` gives each trunk its status; a trunk with several hosts needs all', async (t) => {
  const output = `
 <Registration/ServerURI..............................>  <Auth....................>  <Status.......>
==========================================================================================

 itsp:a-reg-0/sip:127.0.0.1:40401                        itsp:a-oauth                Registered        (exp. 5s)
 itsp:b-reg-0/sip:sip.example.com                                                    Rejected          (exp. 6s ago)
 itsp:c-reg-0/sip:10.0.0.1                               itsp:c-oauth                Registered        (exp. 100s)
 itsp:c-reg-1/sip:10.0.0.2                               itsp:c-oauth                Unregistered
 itsp:d-reg-0/sip:10.0.0.3                               itsp:d-oauth                Unregistered
 itsp:d-reg-1/sip:10.0.0.4                               itsp:d-oauth                Registered        (exp. 100s)

Objects found: 5
`
  const listed = listedRegistrations(output)
  t.same(Object.fromEntries(listed), {
    'itsp:a': 'Registered',
    'itsp:b': 'Rejected',
    'itsp:c': 'Unregistered',
    'itsp:d': 'Unregistered',
  })
  t.equal(
    describeRegistrations([
      { trunk: 'itsp:a', status: 'Registered' },
      { trunk: 'itsp:b', status: 'missing' },
    ]),
    'itsp:a registered, itsp:b not registered (missing)',
  )
})
