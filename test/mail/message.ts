import t from 'tap'
import { parseMessage } from '../../src/mail/message.ts'
import { SIMPLE, SIMPLE_RCPTS, SIMPLE_SENT } from '../helpers/minivm-send.ts'

t.test('parseMessage reads like sendmail -t', async (t) => {
  const m = parseMessage(Buffer.from(SIMPLE))
  t.same(m.envelope, { from: 'pbx@example.com', to: SIMPLE_RCPTS })
  t.equal(m.data.toString(), SIMPLE_SENT, 'Bcc and its folded line removed, the rest untouched')
  t.equal(m.eightBit, false)

  const crlf = parseMessage(Buffer.from(SIMPLE.replace(/\n/g, '\r\n')))
  t.equal(crlf.data.toString(), SIMPLE_SENT.replace(/\n/g, '\r\n'), 'CRLF input')
  t.same(crlf.envelope.to, SIMPLE_RCPTS)

  t.equal(parseMessage(Buffer.from(SIMPLE), 'vm@example.com').envelope.from, 'vm@example.com', '-f wins over From')

  const dot = parseMessage(
    Buffer.from('To: a@example.net\nFrom: b@example.com\n\nline\n..not the end\n.\nafter the end\n'),
  )
  t.equal(
    dot.data.toString(),
    'To: a@example.net\nFrom: b@example.com\n\nline\n..not the end\n',
    'a lone "." line ends the message',
  )

  const bccOnly = parseMessage(
    Buffer.from('From: b@example.com\nTo: undisclosed-recipients:;\nBCC: a@example.net\nCc: a@example.net\n\nx\n'),
  )
  t.same(bccOnly.envelope.to, ['a@example.net'], 'a group without members; a recipient named twice gets one copy')
  t.equal(bccOnly.data.toString(), 'From: b@example.com\nTo: undisclosed-recipients:;\nCc: a@example.net\n\nx\n')

  const lastBcc = parseMessage(Buffer.from('From: b@example.com\nTo: a@example.net\nBcc: c@example.net'))
  t.equal(
    lastBcc.data.toString(),
    'From: b@example.com\nTo: a@example.net\n',
    'a Bcc as the last line of a message without body',
  )

  const utf8 = parseMessage(Buffer.from('From: "Åsa" <asa@example.com>\nTo: "Jöhn" <john@example.net>\n\nhallå\n'))
  t.same(utf8.envelope, { from: 'asa@example.com', to: ['john@example.net'] })
  t.equal(utf8.eightBit, true)

  t.throws(() => parseMessage(Buffer.from('From: b@example.com\nSubject: x\n\nTo: not@header.example\n')), {
    message: /no recipients: expected addresses in its To, Cc or Bcc header/,
  })
  t.throws(() => parseMessage(Buffer.from('To: a@example.net\n\nx\n')), {
    message: /no sender: expected a From header with an address, or give -f/,
  })
})
