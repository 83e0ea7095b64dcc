// The flood for bench/bans.ts, run inside the scanner's network namespace: REGISTERs for unknown
// accounts from many source addresses, round by round (each address sends its k-th in round k,
// so all of them cross the threshold together: the worst burst of bans). Prints what it sent and
// how many got an answer, as JSON.
import { createSocket, type Socket } from 'node:dgram'
import { randomBytes } from 'node:crypto'

const [target = '', portText = '5060', addressesText = '', perText = '10', rateText = '2000'] = process.argv.slice(2)
const addresses = addressesText.split(',')
const port = Number(portText)
const per = Number(perText)
const rate = Number(rateText)

const sockets: Socket[] = await Promise.all(
  addresses.map(
    (a) =>
      new Promise<Socket>((done) => {
        const s = createSocket('udp4')
        s.bind(0, a, () => done(s))
      }),
  ),
)
let answered = 0
for (const s of sockets) s.on('message', () => answered++)

const register = (s: Socket, round: number) => {
  const { address, port: local } = s.address()
  const id = randomBytes(6).toString('hex')
  const user = `guess${round}`
  return Buffer.from(
    [
      `REGISTER sip:${target}:${port} SIP/2.0`,
      `Via: SIP/2.0/UDP ${address}:${local};branch=z9hG4bK${id};rport`,
      `From: <sip:${user}@${target}>;tag=${id}`,
      `To: <sip:${user}@${target}>`,
      `Call-ID: ${id}@${address}`,
      'CSeq: 1 REGISTER',
      `Contact: <sip:${user}@${address}:${local}>`,
      'Max-Forwards: 70',
      'Expires: 60',
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n'),
  )
}

let sent = 0
const t0 = Date.now()
for (let round = 0; round < per; round++) {
  for (const s of sockets) {
    s.send(register(s, round), port, target)
    sent++
    // Paced: a burst of 10,000 datagrams at once would mostly be dropped by the socket buffers,
    // which measures the kernel, not the PBX.
    const wait = t0 + (sent * 1000) / rate - Date.now()
    if (wait > 0) await new Promise((r) => setTimeout(r, wait))
  }
}
await new Promise((r) => setTimeout(r, 2000))
for (const s of sockets) s.close()
console.log(JSON.stringify({ sent, answered, seconds: (Date.now() - t0) / 1000 }))
