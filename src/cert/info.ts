// What a PEM certificate says about itself: who issued it, which names it serves, until when.
import { X509Certificate, createPrivateKey } from 'node:crypto'
import { canonicalIp } from './policy.ts'

/** Our self-signed certificates carry this organisation, so we never renew someone else's by mistake. */
export const SELF_SIGNED_ORG = 'PrivateDial'

export interface CertInfo {
  /** The issuer's CN, else its whole distinguished name. */
  issuer: string
  names: string[]
  notBefore: Date
  notAfter: Date
  serial: string
  /** SHA-256 of the leaf, to tell "same certificate" from "new certificate". */
  fingerprint: string
  selfSigned: boolean
  /** Self-signed by PrivateDial (cert-selfsigned.ts), hence ours to replace. */
  ours: boolean
}

function dnField(dn: string, key: string): string | undefined {
  return dn
    .split('\n')
    .find((l) => l.startsWith(`${key}=`))
    ?.slice(key.length + 1)
}

/** Parse the first certificate of a PEM chain. Throws if there is none. */
export function describeCertificate(pem: string | Uint8Array): CertInfo {
  const x = new X509Certificate(pem)
  const sans = (x.subjectAltName ?? '')
    .split(/,\s*/)
    .map((entry) => /^(DNS|IP Address):(.+)$/.exec(entry))
    .filter((m) => m !== null)
    .map(([, type, value]) => (type === 'DNS' ? value! : canonicalIp(value!)))
  const cn = dnField(x.subject, 'CN')
  // Not checkIssued(x): OpenSSL refuses a leaf whose keyUsage lacks keyCertSign as its own issuer.
  const selfSigned = x.subject === x.issuer && x.verify(x.publicKey)
  return {
    issuer: dnField(x.issuer, 'CN') ?? x.issuer.replaceAll('\n', ', '),
    names: sans.length > 0 ? sans : cn ? [cn] : [],
    notBefore: x.validFromDate,
    notAfter: x.validToDate,
    serial: x.serialNumber,
    fingerprint: x.fingerprint256,
    selfSigned,
    ours: selfSigned && dnField(x.subject, 'O') === SELF_SIGNED_ORG,
  }
}

/** Does this private key belong to the certificate? A bad key (wrong PEM) counts as no. */
export function keyMatchesCertificate(certPem: string | Uint8Array, keyPem: string | Uint8Array): boolean {
  try {
    return new X509Certificate(certPem).checkPrivateKey(createPrivateKey(keyPem))
  } catch {
    return false
  }
}
