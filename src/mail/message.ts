// A voicemail e-mail as MiniVM hands it to mailcmd, read the way `sendmail -t` reads its stdin:
// the envelope from the headers, Bcc removed, a lone "." line as the end.
import addressparser from 'nodemailer/lib/addressparser'

/** The message itself is unusable; another server or setting would not help. */
export class MessageError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'MessageError'
  }
}

export interface ParsedMessage {
  envelope: { from: string; to: string[] }
  /** What goes over the wire: the input up to a lone "." line, without Bcc fields. */
  data: Buffer
  eightBit: boolean
}

/** The first address in a header value or flag such as `"Voicemail" <vm@example.com>`. */
export function firstAddress(value: string): string | undefined {
  return addressparser(value, { flatten: true }).find((a) => a.address)?.address
}

/** Reads a message the way `sendmail -t` does. Pure; throws when there is no sender or recipient. */
export function parseMessage(input: Buffer, sender?: string): ParsedMessage {
  // latin1 maps bytes 1:1 to chars, so 8-bit content survives the round trip untouched.
  let text = input.toString('latin1')
  // MiniVM ends its messages with a "." line, which sendmail reads as the end of input.
  const dot = /(^|\n)\.\r?(?:\n|$)/.exec(text)
  if (dot) text = text.slice(0, dot.index + dot[1]!.length)

  const lines = text.split(/(?<=\n)/)
  const fields: string[] = []
  let i = 0
  for (; i < lines.length; i++) {
    const line = lines[i]!
    if (line === '\n' || line === '\r\n') break
    if (/^[ \t]/.test(line) && fields.length) fields[fields.length - 1] += line
    else fields.push(line)
  }
  const body = lines.slice(i).join('')

  const nameOf = (field: string) => /^([^:\s]+)\s*:/.exec(field)?.[1]?.toLowerCase()
  const valueOf = (field: string) =>
    Buffer.from(field.slice(field.indexOf(':') + 1).replace(/\r?\n/g, ''), 'latin1').toString('utf8')
  const addresses = (names: string[]) =>
    fields
      .filter((f) => names.includes(nameOf(f) ?? ''))
      .flatMap((f) =>
        addressparser(valueOf(f), { flatten: true })
          .map((a) => a.address)
          .filter((a) => a),
      )

  const to = [...new Set(addresses(['to', 'cc', 'bcc']))]
  if (!to.length)
    throw new MessageError('the message has no recipients: expected addresses in its To, Cc or Bcc header')
  const from = sender ?? addresses(['from'])[0]
  if (!from) throw new MessageError('the message has no sender: expected a From header with an address, or give -f')

  const data = fields.filter((f) => nameOf(f) !== 'bcc').join('') + body
  return { envelope: { from, to }, data: Buffer.from(data, 'latin1'), eightBit: /[\x80-\xff]/.test(data) }
}
