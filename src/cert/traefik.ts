// Using the certificate a Traefik in front of us already has: read it from Traefik's acme.json and
// follow the file as Traefik renews.
import { readFile } from 'node:fs/promises'
import { errorMessage, wrap } from '../base/errors.ts'
import { describeCertificate, keyMatchesCertificate, type CertInfo } from './info.ts'
import { missingNames } from './policy.ts'
import type { KeyAndCert } from './selfsigned.ts'

export interface TraefikEntry extends KeyAndCert {
  /** The certificate resolver's name (Traefik 2+); absent in Traefik 1 files. */
  resolver?: string
  /** Names as Traefik recorded them for the entry, main first. */
  declared: string[]
  info: CertInfo
}

export interface TraefikLookup {
  /** The entry that covers every wanted name and lasts longest; absent if none does. */
  found?: TraefikEntry
  /** Layout seen: `v1` (Traefik 1.x, either store format) or `v2` (2.x and later, per resolver). */
  layout: 'v1' | 'v2' | 'empty'
  /** Entries that could not be used, one line each, for the log. */
  problems: string[]
}

type Json = Record<string, unknown>
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v)

// Go's encoding/json matches field names case-insensitively, so Traefik reads (and a hand-edited
// file may hold) any spelling; ours must too.
function field(o: Json, name: string): unknown {
  const lower = name.toLowerCase()
  for (const [k, v] of Object.entries(o)) if (k.toLowerCase() === lower) return v
  return undefined
}

const strings = (v: unknown): string[] => (Array.isArray(v) ? v.filter((s): s is string => typeof s === 'string') : [])

interface RawEntry {
  where: string
  resolver?: string
  domain: unknown
  cert: unknown
  key: unknown
}

/**
 * The three shapes Traefik has written:
 * - 1.0-1.6: `{ DomainsCertificate: { Certs: [ { Domains: {Main, SANs}, Certificate: {Certificate, PrivateKey} } ] } }`
 * - 1.7:     `{ Account, Certificates: [ { Domain: {Main, SANs}, Certificate, Key } ] }`
 * - 2.0+:    `{ <resolver>: { Account, Certificates: [ { domain: {main, sans}, certificate, key } ] } }`
 * Certificates and keys are base64 of PEM in all of them.
 */
function rawEntries(doc: Json): { layout: TraefikLookup['layout']; entries: RawEntry[] } {
  const old = field(doc, 'DomainsCertificate')
  if (isObject(old)) {
    const certs = field(old, 'Certs')
    return {
      layout: 'v1',
      entries: (Array.isArray(certs) ? certs : []).filter(isObject).map((c, i) => {
        const inner = field(c, 'Certificate')
        return {
          where: `DomainsCertificate.Certs[${i}]`,
          domain: field(c, 'Domains'),
          cert: isObject(inner) ? field(inner, 'Certificate') : undefined,
          key: isObject(inner) ? field(inner, 'PrivateKey') : undefined,
        }
      }),
    }
  }
  const fromList = (list: unknown, prefix: string, resolver?: string): RawEntry[] =>
    (Array.isArray(list) ? list : []).filter(isObject).map((c, i) => ({
      where: `${prefix}Certificates[${i}]`,
      ...(resolver === undefined ? {} : { resolver }),
      domain: field(c, 'Domain'),
      cert: field(c, 'Certificate'),
      key: field(c, 'Key'),
    }))
  const top = field(doc, 'Certificates')
  if (Array.isArray(top)) return { layout: 'v1', entries: fromList(top, '') }
  const resolvers = Object.entries(doc).filter(([, v]) => isObject(v) && field(v, 'Certificates') !== undefined)
  if (resolvers.length === 0) return { layout: 'empty', entries: [] }
  return {
    layout: 'v2',
    entries: resolvers.flatMap(([name, v]) => fromList(field(v as Json, 'Certificates'), `${name}.`, name)),
  }
}

function decodePem(v: unknown, what: string): string {
  const text = typeof v === 'string' ? Buffer.from(v, 'base64').toString('utf8') : ''
  if (!text.includes('-----BEGIN ')) throw new Error(`${what} is not base64 of a PEM block`)
  return text
}

/** Pick the certificate for `wanted` (normalized names) out of a parsed acme.json. Pure. */
export function findTraefikCertificate(doc: unknown, wanted: readonly string[]): TraefikLookup {
  if (!isObject(doc)) return { layout: 'empty', problems: ['expected a JSON object at the top'] }
  const { layout, entries } = rawEntries(doc)
  const problems: string[] = []
  let found: TraefikEntry | undefined
  for (const e of entries) {
    const d = isObject(e.domain) ? e.domain : {}
    const main = field(d, 'Main')
    const declared = [...(typeof main === 'string' ? [main] : []), ...strings(field(d, 'SANs'))]
    if (missingNames(declared, wanted).length > 0) continue
    try {
      const cert = decodePem(e.cert, 'certificate')
      const key = decodePem(e.key, 'key')
      const info = describeCertificate(cert)
      if (!keyMatchesCertificate(cert, key)) throw new Error('key does not belong to the certificate')
      if (!found || info.notAfter > found.info.notAfter) {
        found = { cert, key, declared, info, ...(e.resolver === undefined ? {} : { resolver: e.resolver }) }
      }
    } catch (err) {
      problems.push(`${e.where} (${declared.join(', ')}): ${errorMessage(err)}`)
    }
  }
  return { ...(found ? { found } : {}), layout, problems }
}

/** Read and search Traefik's acme.json. Throws, naming the file, if it cannot be read or parsed. */
export async function readTraefikCertificate(file: string, wanted: readonly string[]): Promise<TraefikLookup> {
  let doc: unknown
  try {
    doc = JSON.parse(await readFile(file, 'utf8'))
  } catch (err) {
    throw wrap(`reading Traefik's certificate store ${file}`, err)
  }
  return findTraefikCertificate(doc, wanted)
}
