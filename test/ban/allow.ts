import t from 'tap'
import { allowSources, blockList, isAllowed, ALWAYS_ALLOWED } from '../../src/ban/allow.ts'
import { parseConf } from '../../src/config/conf.ts'

const transport = parseConf(
  '[t_wan](!)\ntype = transport\nlocal_net = 10.0.0.0/8\nlocal_net = 192.168.0.0/16\n[udp](t_wan)\nprotocol = udp\n',
  'pjsip_transport.conf',
)
const endpoints = parseConf(
  [
    '[itsp:a](w_trunk)',
    'remote_hosts = sip.itsp.example, 198.51.100.20:5060',
    '[itsp:b](w_trunk)',
    'remote_hosts = [2001:db8:5::1]:5060',
    '[b-identify]',
    'type = identify',
    'match = 203.0.113.0/28, 2001:db8:6::/48',
    '[alice](w_term)',
    'inbound_auth/username = alice',
  ].join('\n'),
  'pjsip_endpoint.conf',
)

t.test('local networks, trunks and the allow list', async (t) => {
  const sources = allowSources([transport, endpoints], ['192.0.2.7'])
  t.same(sources.hosts, ['sip.itsp.example'], 'names are resolved later')
  t.same(sources.networks, [
    ...ALWAYS_ALLOWED,
    '192.0.2.7',
    '10.0.0.0/8',
    '192.168.0.0/16',
    '198.51.100.20',
    '2001:db8:5::1',
    '203.0.113.0/28',
    '2001:db8:6::/48',
  ])
  const list = blockList(sources.networks)
  for (const a of [
    '127.0.0.1',
    '127.8.9.10',
    '::1',
    '10.1.2.3',
    '198.51.100.20',
    '2001:db8:5::1',
    '203.0.113.15',
    '2001:db8:6:ffff::1',
    '192.0.2.7',
  ])
    t.ok(isAllowed(list, a), `${a} is never banned`)
  for (const a of ['203.0.113.16', '198.51.100.21', '2001:db8:5::2', '192.0.2.8', '8.8.8.8'])
    t.notOk(isAllowed(list, a), `${a} can be banned`)
})
