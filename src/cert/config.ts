// The certificate options from the settings table: which mode, which files, which names.
import { readFileSync } from 'node:fs'
import type { CertOptions } from './keeper.ts'
import { chooseTlsMode } from './policy.ts'
import { ConfigError } from '../base/errors.ts'
import type { Logger } from '../base/log.ts'
import { sections, templateResolver, type ConfDoc } from '../config/conf.ts'
import { settingByName, valueOf, type Settings } from '../config/settings.ts'

export interface TlsFiles {
  certFile: string
  keyFile: string
}

/**
 * The certificate and key the TLS transport serves, as pjsip_transport.conf (after apply) names
 * them: the spec lets users rename them there by hand, and Asterisk reads what the file says.
 * A name the file does not give is the settings table's default.
 */
export function tlsFilesOf(docs: ConfDoc[]): TlsFiles {
  const resolve = templateResolver(docs)
  const tls = docs
    .flatMap(sections)
    .find(
      (s) =>
        !s.isTemplate &&
        resolve(s.name, 'type').at(-1) === 'transport' &&
        resolve(s.name, 'protocol').at(-1)?.toLowerCase() === 'tls',
    )
  const named = (key: string) => (tls ? resolve(tls.name, key).at(-1) : undefined)
  return {
    certFile: named('cert_file') || settingByName('TLS_CERT_FILE').value!,
    keyFile: named('priv_key_file') || settingByName('TLS_KEY_FILE').value!,
  }
}

export function certOptions(
  settings: Settings,
  logger: Logger,
  files: TlsFiles,
  readFile = (p: string) => readFileSync(p, 'utf8'),
): CertOptions {
  const v = (n: string) => valueOf(settings, n)
  const { mode, reason } = chooseTlsMode({
    mode: v('TLS_MODE'),
    acmeEmail: v('ACME_EMAIL'),
    acmeDomains: v('ACME_DOMAINS'),
    acmeFile: v('ACME_FILE'),
  })
  logger.info(`TLS certificate mode: ${mode} (${reason})`)
  const kid = v('ACME_EAB_KID')
  const hmacKey = v('ACME_EAB_HMAC_KEY')
  if (!kid !== !hmacKey)
    throw new ConfigError([
      `ACME_EAB_KID and ACME_EAB_HMAC_KEY go together; only ${kid ? 'ACME_EAB_KID' : 'ACME_EAB_HMAC_KEY'} is set`,
    ])
  let caCert: string | undefined
  const caFile = v('ACME_CA_FILE')
  if (caFile) {
    try {
      caCert = readFile(caFile)
    } catch (err) {
      throw new ConfigError([
        `ACME_CA_FILE names \`${caFile}\`, which can't be read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
      ])
    }
  }
  return {
    mode,
    ...files,
    hostname: v('SIP_EXTERNAL_HOST'),
    domains: v('ACME_DOMAINS')?.split(','),
    traefikFile: v('ACME_FILE'),
    acme: {
      directory: v('ACME_DIRECTORY'),
      email: v('ACME_EMAIL'),
      httpPort: Number(v('ACME_HTTP_PORT')),
      eab: kid && hmacKey ? { kid, hmacKey } : undefined,
      caCert,
      accountKeyFile: undefined,
    },
    logger,
  }
}
