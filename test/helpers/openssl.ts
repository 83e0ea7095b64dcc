// A second opinion on written certificate files, from openssl rather than from the code under test.
import { execa } from 'execa'

export interface OpensslView {
  /** `openssl x509 -text` output. */
  text: string
  subject: string
  issuer: string
  /** `notAfter=...` as openssl parses it. */
  notAfter: Date
  /** SubjectPublicKeyInfo of the certificate, PEM. */
  publicKey: string
}

export async function opensslView(certFile: string): Promise<OpensslView> {
  const run = async (...args: string[]) => (await execa('openssl', ['x509', '-in', certFile, '-noout', ...args])).stdout
  const [text, subject, issuer, enddate, publicKey] = await Promise.all([
    run('-text'),
    run('-subject', '-nameopt', 'RFC2253'),
    run('-issuer', '-nameopt', 'RFC2253'),
    run('-enddate'),
    run('-pubkey'),
  ])
  return {
    text,
    subject: subject.replace(/^subject=/, ''),
    issuer: issuer.replace(/^issuer=/, ''),
    notAfter: new Date(enddate.replace(/^notAfter=/, '')),
    publicKey,
  }
}

/** The public half of a private key file, PEM, as openssl derives it. */
export async function opensslPublicKeyOf(keyFile: string): Promise<string> {
  return (await execa('openssl', ['pkey', '-in', keyFile, '-pubout'])).stdout
}
