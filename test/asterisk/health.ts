// `privatedial health` against a real Asterisk: the transports it reports are the ones the
// shipped config defines, read from `pjsip show transports` as Asterisk prints it.
import t from 'tap'
import { join } from 'node:path'
import { health, listedTransports } from '../../src/asterisk/health.ts'
import { findAsterisk, startAsterisk } from '../helpers/asterisk.ts'

t.test('the column header of `pjsip show transports` is not a transport', async (t) => {
  const out = [
    'Transport:  <TransportId........>  <Type>  <cos>  <tos>  <BindAddress....................>',
    '==========================================================================================',
    'Transport:  tcp                       tcp      0      0  0.0.0.0:5060',
    'Transport:  udp                       udp      0      0  0.0.0.0:5060',
  ].join('\n')
  t.same(listedTransports(out), ['tcp', 'udp'])
})

const asterisk = findAsterisk()
if (typeof asterisk === 'string') t.test('health on a real Asterisk', { skip: asterisk }, () => {})
else
  t.test('health on a real Asterisk names exactly the transports that are up', async (t) => {
    const pbx = await startAsterisk(asterisk)
    t.teardown(() => pbx.stop())
    const r = await health({ bin: asterisk.bin, confDir: join(pbx.dir, 'etc') })
    t.equal(r.ok, true, r.detail)
    t.equal(r.detail, 'Asterisk answers; transports up: tcp, tcp6, tls, tls6, udp, udp6')
  })
