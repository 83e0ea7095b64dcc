import t from 'tap'
import { isSecurityEventLine, normalizeAddress, parseSecurityEvent } from '../../src/ban/events.ts'

// As Asterisk 22 prints them (captured from the test PBX), with documentation addresses.
const line = (fields: string) =>
  `[2026-12-01 08:08:23.190] SECURITY[21093]: res_security_log.c:114 security_event_stasis_cb: ${fields}`
const INVALID_ACCOUNT = line(
  'SecurityEvent="InvalidAccountID",EventTV="2026-12-01T08:08:23.189+0000",Severity="Error",Service="PJSIP",EventVersion="1",AccountID="nobody",SessionID="1-21098@127.0.0.1",LocalAddress="IPV4/UDP/192.0.2.1/5060",RemoteAddress="IPV4/UDP/203.0.113.5/33289"',
)
const WRONG_PASSWORD = line(
  'SecurityEvent="ChallengeResponseFailed",EventTV="2026-12-01T08:08:23.355+0000",Severity="Error",Service="PJSIP",EventVersion="1",AccountID="alice",SessionID="1-21101@127.0.0.1",LocalAddress="IPV4/UDP/192.0.2.1/5060",RemoteAddress="IPV4/UDP/203.0.113.5/43903",Challenge="1796112503/c37f95245d5e833bd576450241264acb",Response="a461c5d96c5f6e9547e506beec55f5f3",ExpectedResponse=""',
)
const SUCCESS = line(
  'SecurityEvent="SuccessfulAuth",EventTV="2026-12-01T08:08:23.498+0000",Severity="Informational",Service="PJSIP",EventVersion="1",AccountID="alice",SessionID="1-21103@127.0.0.1",LocalAddress="IPV6/UDP/fd00::1/5060",RemoteAddress="IPV6/UDP/fd00:0:0::0002/46109",UsingPassword="1"',
)
const CHALLENGE = line(
  'SecurityEvent="ChallengeSent",EventTV="2026-12-01T08:08:23.354+0000",Severity="Informational",Service="PJSIP",EventVersion="1",AccountID="alice",SessionID="1-21101@127.0.0.1",LocalAddress="IPV4/UDP/192.0.2.1/5060",RemoteAddress="IPV4/UDP/203.0.113.5/43903",Challenge=""',
)

t.test('failures, successes and the rest', async (t) => {
  t.same(parseSecurityEvent(INVALID_ACCOUNT), {
    kind: 'failure',
    event: 'InvalidAccountID',
    address: '203.0.113.5',
    reason: 'unknown account nobody',
  })
  t.same(parseSecurityEvent(WRONG_PASSWORD), {
    kind: 'failure',
    event: 'ChallengeResponseFailed',
    address: '203.0.113.5',
    reason: 'wrong password for alice',
  })
  t.match(parseSecurityEvent(SUCCESS), { kind: 'success', address: 'fd00::2' }, 'IPv6, in its one spelling')
  t.equal(parseSecurityEvent(CHALLENGE), undefined, 'a challenge is neither')
  for (const other of [
    '[2026-12-01 08:08:23.191] NOTICE[21074]: res_pjsip/pjsip_distributor.c:688 log_failed_request: Request failed',
    '  == Endpoint alice is now Reachable',
    '',
  ]) {
    t.equal(parseSecurityEvent(other), undefined, JSON.stringify(other))
    t.notOk(isSecurityEventLine(other))
  }
  for (const l of [INVALID_ACCOUNT, WRONG_PASSWORD, SUCCESS, CHALLENGE]) t.ok(isSecurityEventLine(l))
})

t.test("the security log file's lines read the same", async (t) => {
  const inFile = INVALID_ACCOUNT.replace(
    'SECURITY[21093]: res_security_log.c:114 security_event_stasis_cb:',
    'SECURITY[940] res_security_log.c:',
  )
  t.not(inFile, INVALID_ACCOUNT)
  t.same(parseSecurityEvent(inFile), parseSecurityEvent(INVALID_ACCOUNT))
})

t.test('a caller cannot have another address blamed through the text it controls', async (t) => {
  const forged = `x",LocalAddress="IPV4/UDP/192.0.2.1/5060",RemoteAddress="IPV4/UDP/192.0.2.99/5060`
  const inCallId = INVALID_ACCOUNT.replace('1-21098@127.0.0.1', forged)
  t.equal(parseSecurityEvent(inCallId)?.address, '203.0.113.5', 'a fake RemoteAddress in the Call-ID')
  const inAccount = WRONG_PASSWORD.replace('AccountID="alice"', `AccountID="${forged}"`)
  t.equal(parseSecurityEvent(inAccount)?.address, '203.0.113.5', 'in the account name')
  const escaped = WRONG_PASSWORD.replace(
    'Response="a461c5d96c5f6e9547e506beec55f5f3"',
    String.raw`Response="x\",RemoteAddress=\"IPV4/UDP/192.0.2.99/5060\""`,
  )
  t.equal(parseSecurityEvent(escaped)?.address, '203.0.113.5', 'an escaped one in the digest response')
  const notAnAddress = INVALID_ACCOUNT.replace('203.0.113.5', '203.0.113.999')
  t.equal(parseSecurityEvent(notAnAddress), undefined, 'an impossible address is no event')
  const evil = INVALID_ACCOUNT.replace('AccountID="nobody"', `AccountID="${'☎;=> '.repeat(40)}"`)
  t.ok(parseSecurityEvent(evil)!.reason.length < 100, 'a long account name is cut in the reason')
})

t.test('one spelling per address', async (t) => {
  t.equal(normalizeAddress('[2001:DB8:0::1]'), '2001:db8::1')
  t.equal(normalizeAddress('::ffff:198.51.100.7'), '198.51.100.7')
  t.equal(normalizeAddress('198.51.100.7'), '198.51.100.7')
  for (const bad of ['', 'example.com', '1.2.3', '::g', '../etc']) t.equal(normalizeAddress(bad), undefined, bad)
})
