// Which files the certificate keeper writes: the ones the TLS transport serves.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { certOptions, tlsFilesOf } from '../../src/cert/config.ts'
import { memoryLogger } from '../../src/base/log.ts'
import { parseConf } from '../../src/config/conf.ts'
import { readSettings } from '../../src/config/settings.ts'
import { DEFAULTS_DIR } from '../../src/config/seed.ts'

const shipped = readFileSync(join(DEFAULTS_DIR, 'pjsip_transport.conf'), 'utf8')

t.test('the shipped transport serves the spec file names', async (t) => {
  t.same(tlsFilesOf([parseConf(shipped, 'pjsip_transport.conf')]), {
    certFile: '/etc/ssl/asterisk/cert.pem',
    keyFile: '/etc/ssl/asterisk/priv_key.pem',
  })
})

t.test('names edited by hand in pjsip_transport.conf are the files made and served', async (t) => {
  const edited = shipped
    .replace('cert_file = /etc/ssl/asterisk/cert.pem', 'cert_file = /srv/certs/pbx.crt')
    .replace('priv_key_file = /etc/ssl/asterisk/priv_key.pem', 'priv_key_file = /srv/certs/pbx.key')
  t.not(edited, shipped, 'the shipped file names the spec files')
  const files = tlsFilesOf([parseConf(edited, 'pjsip_transport.conf')])
  t.same(files, { certFile: '/srv/certs/pbx.crt', keyFile: '/srv/certs/pbx.key' })
  const { settings } = readSettings({}, { readFile: () => '' })
  const opts = certOptions(settings, memoryLogger('cert'), files)
  t.equal(opts.certFile, '/srv/certs/pbx.crt')
  t.equal(opts.keyFile, '/srv/certs/pbx.key')
})

t.test('a TLS transport that names no files serves the defaults', async (t) => {
  const doc = parseConf('[tls6]\ntype = transport\nprotocol = tls\nbind = [::]:5061\n', 'pjsip_transport.conf')
  t.same(tlsFilesOf([doc]), { certFile: '/etc/ssl/asterisk/cert.pem', keyFile: '/etc/ssl/asterisk/priv_key.pem' })
})
