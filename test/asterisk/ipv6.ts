import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { cannotBind, describeUnavailable, ipv6Transports, unavailableIpv6 } from '../../src/asterisk/ipv6.ts'
import { parseConf, setValue } from '../../src/config/conf.ts'
import { execa } from 'execa'
import { findAsterisk, hasLoopback6, SHIPPED_CONFIG } from '../helpers/asterisk.ts'

const shipped = () =>
  parseConf(readFileSync(join(SHIPPED_CONFIG, 'pjsip_transport.conf'), 'utf8'), 'pjsip_transport.conf')
// A unique local address no interface here has: binding it fails as [::] does on a host without
// IPv6. Only bound, never sent to.
const ABSENT = 'fd00:dead:beef::1'

t.test('the IPv6 transports are found by their bind, through the template', async (t) => {
  t.same(ipv6Transports([shipped()]), [
    { name: 'udp6', address: '::' },
    { name: 'tcp6', address: '::' },
    { name: 'tls6', address: '::' },
  ])
})

t.test('an address this host does not have cannot be bound; loopback can', async (t) => {
  t.equal(await cannotBind(ABSENT), 'EADDRNOTAVAIL')
  if (await hasLoopback6()) t.equal(await cannotBind('::1'), undefined)
})

t.test('transports on an address that cannot be bound are named, with why', async (t) => {
  const doc = shipped()
  t.equal(await unavailableIpv6([doc]), undefined, 'the shipped [::] binds here')
  setValue(doc, 't_wan6', 'bind', `[${ABSENT}]:5060`)
  const down = await unavailableIpv6([doc])
  t.same(down, { names: ['udp6', 'tcp6'], why: `[${ABSENT}] (EADDRNOTAVAIL)` }, 'tls6 binds its own [::]')
  t.match(
    describeUnavailable(down!),
    /^IPv6 is not available on this host: binding \[fd00:dead:beef::1\] \(EADDRNOTAVAIL\) failed, so transports udp6, tcp6 stay down and phones reach the PBX over IPv4 only/,
  )
})

// Docker's way for a container it gives no IPv6: its interfaces have IPv6 turned off. A network
// namespace of the test's own has the same; it needs root (or CAP_SYS_ADMIN), ip and sysctl.
const SETUP = [
  'ip link set lo up',
  'sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1 net.ipv6.conf.lo.disable_ipv6=1',
].join(' && ')
const netns = await execa('unshare', ['-n', 'sh', '-c', SETUP], { reject: false })
const asterisk = findAsterisk()
const cannot =
  netns.exitCode !== 0
    ? `no network namespace of our own here (unshare -n: ${netns.stderr.trim() || netns.exitCode})`
    : typeof asterisk === 'string'
      ? asterisk
      : false

t.test(
  'where the interfaces have IPv6 turned off, [::] still binds: Asterisk boots without an error',
  { skip: cannot },
  async (t) => {
    const script = join(import.meta.dirname, '../fixtures/ipv6/boot-without-ipv6.ts')
    const r = await execa('unshare', ['-n', 'sh', '-c', `${SETUP} && exec "$0" "$1"`, process.execPath, script], {
      reject: false,
      timeout: 120_000,
    })
    t.equal(r.exitCode, 0, r.stderr)
    const got = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as {
      transports: string
      errors: string[]
      unavailable: unknown
    }
    t.same(got.errors, [], 'no ERROR at boot')
    for (const name of ['udp', 'tcp', 'tls', 'udp6', 'tcp6', 'tls6'])
      t.match(got.transports, new RegExp(`^Transport:\\s+${name}\\s`, 'm'), `${name} is up`)
    t.equal(got.unavailable, null, 'run has nothing to warn about')
  },
)
