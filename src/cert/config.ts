// The certificate options from the settings table: which mode, which files, which names.
import { readFileSync } from 'node:fs'
import type { CertOptions } from './keeper.ts'
import { chooseTlsMode } from './policy.ts'
import { ConfigError } from '../base/errors.ts'
import type { Logger } from '../base/log.ts'
import type { Settings } from '../config/settings.ts'

export const DEFAULT_CERT_FILE = '/etc/ssl/asterisk/cert.pem'
export const DEFAULT_KEY_FILE = '/etc/ssl/asterisk/priv_key.pem'

export function certOptions(
  settings: Settings,
  logger: Logger,
  readFile = (p: string) => readFileSync(p, 'utf8'),
): CertOptions {
  const v = (n: string) => settings.get(n)?.value
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
  const certFile = v('TLS_CERT_FILE') ?? DEFAULT_CERT_FILE
  return {
    mode,
    certFile,
    keyFile: v('TLS_KEY_FILE') ?? DEFAULT_KEY_FILE,
    hostname: v('SIP_EXTERNAL_HOST'),
    domains: v('ACME_DOMAINS')?.split(','),
    traefikFile: v('ACME_FILE'),
    acme: {
      directory: v('ACME_DIRECTORY'),
      email: v('ACME_EMAIL'),
      httpPort: v('ACME_HTTP_PORT') ? Number(v('ACME_HTTP_PORT')) : undefined,
      eab: kid && hmacKey ? { kid, hmacKey } : undefined,
      caCert,
      accountKeyFile: undefined,
    },
    logger,
  }
}
