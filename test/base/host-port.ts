import t from 'tap'
import { joinHostPort, splitHostPort } from '../../src/base/host-port.ts'

t.test('HOST[:PORT] in every form the files and flags use', async (t) => {
  t.same(splitHostPort('mx.example.com:587'), { host: 'mx.example.com', port: '587' })
  t.same(splitHostPort('[2001:db8::1]:5061'), { host: '2001:db8::1', port: '5061' })
  t.same(splitHostPort('2001:db8::1'), { host: '2001:db8::1' }, 'a bare IPv6 address has no port')
  t.same(splitHostPort('smtp'), { host: 'smtp' })
  t.equal(splitHostPort('a b:25'), undefined)
  t.equal(joinHostPort('::1', 25), '[::1]:25')
})
