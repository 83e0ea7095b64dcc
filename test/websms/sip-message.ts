import t from 'tap'
import { createSocket, type RemoteInfo } from 'node:dgram'
import {
  buildMessage,
  MAX_PART_BYTES,
  needsEncoding,
  openSipClient,
  parseResponse,
  quotedName,
  SipTimeoutError,
  sipUser,
  splitText,
  type SipText,
} from '../../src/websms/sip-message.ts'
import { findAsterisk, freePort, startTestPbx } from '../helpers/asterisk.ts'
import { parseSipMessage, type SipMessage } from '../helpers/sipp.ts'

const target = { host: '127.0.0.1', port: 5060 }
const local = { host: '127.0.0.1', port: 40000 }
const ids = { branch: 'z9hG4bKabc', tag: 't1', callId: 'c1@127.0.0.1' }
const parse = (text: SipText) => parseSipMessage('received', buildMessage(target, local, text, ids).toString('utf8'))

t.test('a MESSAGE carries the numbers in its URIs and the text in its body', async (t) => {
  const m = parse({ to: '+46701234567', from: '+12025550101', body: 'Hej 👋🏽\nhur är läget?' })
  t.equal(m.startLine, 'MESSAGE sip:+46701234567@127.0.0.1:5060 SIP/2.0')
  t.equal(m.header('Via'), 'SIP/2.0/UDP 127.0.0.1:40000;rport;branch=z9hG4bKabc')
  t.equal(m.header('From'), '<sip:+12025550101@127.0.0.1>;tag=t1')
  t.equal(m.header('To'), '<sip:+46701234567@127.0.0.1>')
  t.equal(m.header('CSeq'), '1 MESSAGE')
  t.equal(m.header('Max-Forwards'), '70')
  t.equal(m.header('Content-Type'), 'text/plain;charset=UTF-8')
  t.equal(m.header('X-Body-Encoding'), undefined, 'a text that passes as it is is sent as it is')
  t.equal(m.body, 'Hej 👋🏽\nhur är läget?')
  t.equal(Number(m.header('Content-Length')), Buffer.byteLength(m.body), 'Content-Length counts bytes')
})

t.test('no value can reach a header line as anything but its own field', async (t) => {
  const hostile = ['+4670\r\nVia: evil', 'a b<sip:x@y>', '"quoted";tag=x', '${SHELL}', '=>;,', '\u0000', 'ünï☃']
  for (const v of hostile) {
    const m = parse({ to: v, from: v, body: v })
    const names = m.headers.map((h) => h.name)
    t.same(
      names,
      [
        'Via',
        'Max-Forwards',
        'From',
        'To',
        'Call-ID',
        'CSeq',
        'User-Agent',
        'Content-Type',
        ...(needsEncoding(v) ? ['X-Body-Encoding'] : []),
        'Content-Length',
      ],
      JSON.stringify(v),
    )
    t.match(
      m.header('To'),
      /^<sip:[A-Za-z0-9\-_.!~*'()&=+$,;?/%]+@127\.0\.0\.1>$/,
      `${JSON.stringify(v)} in To is escaped`,
    )
  }
  t.equal(sipUser('+46 70-123'), '+46%2070-123')
  t.equal(sipUser('ünï'), '%C3%BCn%C3%AF')
  t.throws(() => sipUser(''), /must not be empty/)
  t.equal(quotedName('My "Bank" \\ Co'), '"My \\"Bank\\" \\\\ Co"')
  t.throws(() => quotedName('Bank\r\nVia: x'), /one line without control characters, got "Bank\\r\\nVia: x"/)
  const named = parse({ to: '+46701234567', from: 'MyBank', fromName: 'My Bank', body: 'x' })
  t.equal(named.header('From'), '"My Bank" <sip:MyBank@127.0.0.1>;tag=t1')
})

t.test('a text Asterisk would cut is sent base64 with X-Body-Encoding', async (t) => {
  for (const body of ['ends with a newline\n', 'ends with CRLF\r\n', 'has a \u0000 NUL']) {
    const m = parse({ to: '+46701234567', from: '+12025550101', body })
    t.equal(m.header('X-Body-Encoding'), 'base64', JSON.stringify(body))
    t.equal(Buffer.from(m.body, 'base64').toString('utf8'), body)
  }
  t.throws(
    () => buildMessage(target, local, { to: '1', from: '2', body: 'x'.repeat(1001) }, ids),
    /at most 1000 bytes on the wire \(split it with splitText\), got 1001/,
  )
  t.doesNotThrow(
    () => buildMessage(target, local, { to: '1', from: '2', body: `${'é'.repeat(MAX_PART_BYTES / 2 - 1)}\n` }, ids),
    'a full part fits base64-encoded',
  )
})

t.test('long texts are split between graphemes, at a space when one is near', async (t) => {
  t.same(splitText('short'), ['short'])
  const words = Array.from({ length: 300 }, (_, i) => `word${i}`).join(' ')
  const parts = splitText(words, 100)
  t.equal(parts.join(''), words, 'nothing lost or added')
  for (const p of parts) t.ok(Buffer.byteLength(p) <= 100, `${Buffer.byteLength(p)} bytes`)
  t.ok(
    parts.slice(0, -1).every((p) => p.endsWith(' ')),
    'cut after spaces',
  )
  const family = '👨‍👩‍👧‍👦'
  const emoji = family.repeat(40)
  const eparts = splitText(emoji, 100)
  t.equal(eparts.join(''), emoji)
  for (const p of eparts) t.equal(p.replaceAll(family, ''), '', 'each part holds whole families')
  const zalgo = `Z${'\u0301\u0316\u0337'.repeat(200)}algo`
  const zparts = splitText(zalgo, 100)
  t.equal(zparts.join(''), zalgo, 'one grapheme of 1200 bytes...')
  for (const p of zparts)
    t.ok(Buffer.byteLength(p) <= 100, `...is cut between code points (${Buffer.byteLength(p)} bytes)`)
  const solid = 'x'.repeat(250)
  t.same(
    splitText(solid, 100).map((p) => p.length),
    [100, 100, 50],
    'no space: cut at the limit',
  )
})

t.test('parsing responses', async (t) => {
  const r = parseResponse(
    Buffer.from(
      'SIP/2.0 202 Accepted\r\nv: SIP/2.0/UDP 127.0.0.1:1;branch=z9hG4bKx;rport=1\r\nVia: SIP/2.0/UDP other;branch=z9hG4bKy\r\nCSeq: 1 MESSAGE\r\nContent-Length: 0\r\n\r\n',
    ),
  )
  t.same(
    r,
    { status: 202, reason: 'Accepted', branch: 'z9hG4bKx', cseqMethod: 'MESSAGE' },
    'the top Via, compact or not',
  )
  t.equal(parseResponse(Buffer.from('MESSAGE sip:x SIP/2.0\r\n\r\n')), undefined, 'a request is no response')
  t.equal(parseResponse(Buffer.from('\u0000\u0001garbage')), undefined)
})

/** A UDP peer that answers each MESSAGE as `answer` says (nothing: drop it), recording what came. */
async function peer(answer: (m: SipMessage, n: number) => number[]) {
  const socket = createSocket('udp4')
  const got: SipMessage[] = []
  socket.on('message', (buf: Buffer, from: RemoteInfo) => {
    const m = parseSipMessage('received', buf.toString('utf8'))
    got.push(m)
    for (const status of answer(m, got.length)) {
      const res = [
        `SIP/2.0 ${status} ${status === 100 ? 'Trying' : status === 202 ? 'Accepted' : 'Not Found'}`,
        `Via: ${m.header('Via')};received=127.0.0.1`,
        `From: ${m.header('From')}`,
        `To: ${m.header('To')};tag=p`,
        `Call-ID: ${m.header('Call-ID')}`,
        `CSeq: ${m.header('CSeq')}`,
        'Content-Length: 0',
        '',
        '',
      ].join('\r\n')
      socket.send(res, from.port, from.address)
    }
  })
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve))
  t.teardown(() => new Promise<void>((resolve) => socket.close(() => resolve())))
  return { target: { host: '127.0.0.1', port: socket.address().port }, got }
}

const text: SipText = { to: '+12025550102', from: '+46701234567', body: 'hi' }

t.test('the client retransmits until it hears a final answer, and settles on the first', async (t) => {
  const p = await peer((_m, n) => (n < 3 ? [] : n === 3 ? [100, 202, 202] : [202]))
  const client = await openSipClient({ t1Ms: 20, t2Ms: 80 })
  t.teardown(() => client.close())
  t.same(await client.send(p.target, text), { status: 202, reason: 'Accepted' })
  t.equal(p.got.length, 3, 'two retransmissions before the answer')
  t.equal(new Set(p.got.map((m) => m.header('Via'))).size, 1, 'retransmissions are the same request (same branch)')
  t.same(
    await client.send(p.target, text),
    { status: 202, reason: 'Accepted' },
    'the client goes on after a duplicate answer',
  )
  t.not(p.got[3]!.header('Via'), p.got[0]!.header('Via'), 'a new text is a new transaction')
})

t.test('an error answer is final too', async (t) => {
  const p = await peer(() => [404])
  const client = await openSipClient({ t1Ms: 20 })
  t.teardown(() => client.close())
  t.same(await client.send(p.target, text), { status: 404, reason: 'Not Found' })
})

t.test('no answer: the client gives up after the timeout, and says where it sent to', async (t) => {
  const p = await peer(() => [])
  const client = await openSipClient({ t1Ms: 10, t2Ms: 40, timeoutMs: 300 })
  t.teardown(() => client.close())
  await t.rejects(client.send(p.target, text), new SipTimeoutError(p.target, 300))
  t.ok(p.got.length >= 3, `retransmitted (${p.got.length} sends)`)
  const gaps = p.got.length
  await new Promise((r) => setTimeout(r, 100))
  t.equal(p.got.length, gaps, 'and stops retransmitting')
})

t.test('closing settles what is pending', async (t) => {
  const p = await peer(() => [])
  const client = await openSipClient({ t1Ms: 10 })
  const sent = client.send(p.target, text)
  await client.close()
  await t.rejects(sent, /SIP client closed/)
})

t.test('the source port is the one asked for', async (t) => {
  const port = await freePort()
  const client = await openSipClient({ localPort: port })
  t.teardown(() => client.close())
  t.equal(client.port, port)
  await t.rejects(openSipClient({ localPort: port }), /EADDRINUSE/, 'a port in use is an error')
})

const asterisk = findAsterisk()
t.test(
  'a real Asterisk takes a MESSAGE from the websms endpoint',
  { skip: typeof asterisk === 'string' ? asterisk : false },
  async (t) => {
    if (typeof asterisk === 'string') return
    const pbx = await startTestPbx(asterisk)
    t.teardown(() => pbx.stop())
    const target = { host: '127.0.0.1', port: pbx.sipPort }
    const client = await openSipClient({ localPort: pbx.websmsPort })
    t.teardown(() => client.close())
    t.same(
      await client.send(target, { to: '+12025550102', from: '+46701234567', body: 'hi 👋' }),
      { status: 202, reason: 'Accepted' },
      "to a user's number",
    )
    await pbx.waitForLog(/Text for PJSIP\/bob not delivered: no phone is registered/)
    t.pass('the dial plan took it to the user (no phone registered)')
    // A name may be the Contact a trunk registered (the number is then in To): Asterisk takes it,
    // and the dial plan, finding no user's number anywhere, drops it and says so.
    t.equal((await client.send(target, { to: 'no-such-exten', from: '+46701234567', body: 'hi' })).status, 202)
    await pbx.waitForLog(/dropped a number that is not digits/)
    t.pass('to something that is no number: dropped, and the log says so')
    const stranger = await openSipClient()
    t.teardown(() => stranger.close())
    t.equal(
      (await stranger.send(target, { to: '+12025550102', from: '+46701234567', body: 'hi' })).status,
      401,
      'from another port (not the websms endpoint): challenged',
    )
  },
)
