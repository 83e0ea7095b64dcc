// A self-signed certificate so the TLS transport works before (or without) any CA.
import { generateKeyPair, randomBytes } from 'node:crypto'
import { isIP } from 'node:net'
import { promisify } from 'node:util'
import forge from 'node-forge'
import { SELF_SIGNED_ORG } from './info.ts'

export interface KeyAndCert {
  /** PEM, leaf first. */
  cert: string
  /** PEM (PKCS#8). */
  key: string
}

export interface SelfSignedOptions {
  /** Normalized names (cert-policy normalizeName); the first is also the subject CN. */
  names: readonly string[]
  now: Date
  days?: number
  /**
   * Keep this key (PEM, RSA) instead of making a new one: a renewal then keeps the public key, so
   * softphones that pinned it on first use keep trusting the server.
   */
  key?: string | undefined
}

export const SELF_SIGNED_DAYS = 365
const DAY = 86_400_000

async function newRsaKey(): Promise<string> {
  // Node makes the key (native, off the main thread); forge only builds the certificate, which
  // node:crypto cannot do.
  const { privateKey } = await promisify(generateKeyPair)('rsa', {
    modulusLength: 2048,
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  })
  return privateKey
}

export async function createSelfSigned(opts: SelfSignedOptions): Promise<KeyAndCert> {
  const [cn] = opts.names
  if (cn === undefined) throw new Error('creating a self-signed certificate: expected at least one name, got none')
  // RSA 2048, not ECDSA: node-forge signs certificates with RSA keys only, and every SIP phone that
  // does TLS at all accepts RSA.
  const keyPem = opts.key ?? (await newRsaKey())
  const key = forge.pki.privateKeyFromPem(keyPem)
  const cert = forge.pki.createCertificate()
  cert.publicKey = forge.pki.setRsaPublicKey(key.n, key.e)
  const serial = randomBytes(16)
  // Top bits 01: positive (RFC 5280) and without a leading zero byte, which strict DER parsers refuse.
  serial[0] = (serial[0]! & 0x3f) | 0x40
  cert.serialNumber = serial.toString('hex')
  // Backdated an hour so a phone whose clock runs a little behind still accepts it.
  cert.validity.notBefore = new Date(opts.now.getTime() - 3_600_000)
  cert.validity.notAfter = new Date(opts.now.getTime() + (opts.days ?? SELF_SIGNED_DAYS) * DAY)
  const subject = [
    { shortName: 'CN', value: cn },
    { shortName: 'O', value: SELF_SIGNED_ORG },
  ]
  cert.setSubject(subject)
  cert.setIssuer(subject)
  cert.setExtensions([
    { name: 'basicConstraints', cA: false, critical: true },
    { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
    { name: 'extKeyUsage', serverAuth: true, clientAuth: true },
    { name: 'subjectAltName', altNames: opts.names.map((n) => (isIP(n) ? { type: 7, ip: n } : { type: 2, value: n })) },
    { name: 'subjectKeyIdentifier' },
  ])
  cert.sign(key, forge.md.sha256.create())
  return { cert: forge.pki.certificateToPem(cert).replaceAll('\r\n', '\n'), key: keyPem }
}
