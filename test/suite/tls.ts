// A renewed certificate on a real Asterisk: written by the certificate module, taken up by the
// res_pjsip reload that run does, served to new TLS handshakes, while a phone registered over TLS
// keeps its connection and registration.
import t from 'tap'
import { rm } from 'node:fs/promises'
import { connect } from 'node:tls'
import { ensureCertificate } from '../../src/cert/keeper.ts'
import { memoryLogger } from '../../src/base/log.ts'
import { findAsterisk, startTestPbx, USERS } from '../helpers/asterisk.ts'
import { served, TlsPhone } from '../helpers/tls-phone.ts'

const asterisk = findAsterisk()
if (typeof asterisk === 'string') t.plan(0, `skipped: ${asterisk}`)
else {
  const pbx = await startTestPbx(asterisk)
  t.teardown(() => pbx.stop())

  t.test('a renewed certificate is served to new handshakes; a phone on TLS stays registered', async (t) => {
    const before = await served(pbx.tlsPort)
    t.match(before, /subject=CN ?= ?localhost/, 'the first certificate is served')

    const socket = connect({ host: '127.0.0.1', port: pbx.tlsPort, rejectUnauthorized: false })
    await new Promise((r) => socket.once('secureConnect', r))
    t.teardown(() => socket.destroy())
    const phone = new TlsPhone(socket, 'alice', USERS.alice.password, '127.0.0.1')
    t.equal(await phone.register(), 200, 'alice registers over TLS')
    const contact = new RegExp(`alice/sip:alice@127\\.0\\.0\\.1:${socket.localPort};transport=tls`, 'i')
    t.match(await pbx.rx('pjsip show contacts'), contact, "the contact is this connection's")

    // What run does when the certificate changes: the module writes the files atomically, then
    // res_pjsip is reloaded.
    const log = memoryLogger('cert')
    const certFile = `${pbx.dir}/ssl/cert.pem`
    const keyFile = `${pbx.dir}/ssl/priv_key.pem`
    await rm(certFile)
    const r = await ensureCertificate({
      mode: 'selfsigned',
      certFile,
      keyFile,
      hostname: 'pbx.example.com',
      logger: log,
    })
    t.equal(r.changed, true, 'a new certificate was written')
    await pbx.rx('module reload res_pjsip.so')

    const after = await served(pbx.tlsPort)
    t.match(after, /subject=.*CN ?= ?pbx\.example\.com/, 'new handshakes get the new certificate')
    t.not(after, before)
    t.equal(socket.destroyed, false, "the phone's TLS connection is still open")
    t.equal(await phone.register(), 200, 'and its registration refresh on it is answered')
    t.match(await pbx.rx('pjsip show contacts'), contact, 'alice is still registered over the same TLS connection')
  })
}
