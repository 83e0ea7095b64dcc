// Obtaining a certificate from an ACME CA (Let's Encrypt or any RFC 8555 server) with HTTP-01,
// answered by our own listener that is open only while a challenge is pending.
import type { Server } from 'node:http'
import { Agent, request as httpsRequest } from 'node:https'
import { mkdir, readFile } from 'node:fs/promises'
import { dirname } from 'node:path'
import { once } from 'node:events'
import { rootCertificates } from 'node:tls'
import acme from 'acme-client'
import { writeFileAtomic } from '../base/atomic-write.ts'
import { wrap } from '../base/errors.ts'
import type { Logger } from '../base/log.ts'
import type { KeyAndCert } from './selfsigned.ts'
import { createServer } from '../base/http.ts'

export interface ExternalAccountBinding {
  kid: string
  /** Base64url, as the CA hands it out. A secret: never logged. */
  hmacKey: string
}

export interface AcmeOptions {
  /** A URL; see resolveAcmeDirectory in cert-policy.ts. */
  directoryUrl: string
  email?: string | undefined
  /** Normalized DNS names; the first is the subject CN. */
  domains: readonly string[]
  /** The ACME account's private key (PEM, 0600); made on first use and kept. */
  accountKeyFile: string
  /** Where our HTTP-01 listener binds while a challenge is pending. */
  httpPort: number
  /** Bind address; all interfaces when absent. */
  httpAddress?: string | undefined
  eab?: ExternalAccountBinding | undefined
  /**
   * Extra CA certificate(s), PEM, trusted for the ACME server's own HTTPS besides the system roots
   * (a private CA, pebble's test CA). acme-client sends every request through one shared axios
   * instance, so this holds for the whole process until the next call sets it again.
   */
  caCert?: string | undefined
  /**
   * How often one HTTP request to the CA is retried on a network error, 5xx or 429 before this
   * attempt fails (acme-client's default: 5, pausing 5 s more each time). Process-wide like caCert.
   */
  requestRetries?: number | undefined
  /**
   * How long one HTTP request to the CA may go unanswered. acme-client sets no limit, so a CA that
   * accepts the connection and then says nothing held the renewal loop forever. Process-wide too.
   */
  requestTimeoutMs?: number | undefined
  logger: Logger
}

const REQUEST_TIMEOUT_MS = 30_000

interface AcmeClientSettings {
  retryMaxAttempts: number
}
let acmeClientRetries: number | undefined

/**
 * acme-client's own retry settings. acme.axios and its defaults are public (its README sets a proxy
 * there); `acmeSettings` beside them is not, so package.json pins the 5.4 series that has it and
 * test/cert/acme.ts checks it is there. Should a later version drop it, retries stay acme-client's.
 */
export function acmeClientSettings(): AcmeClientSettings | undefined {
  const settings = (acme.axios.defaults as { acmeSettings?: Partial<AcmeClientSettings> }).acmeSettings
  return typeof settings?.retryMaxAttempts === 'number' ? (settings as AcmeClientSettings) : undefined
}

function configureTransport(opts: AcmeOptions): Agent | undefined {
  const defaults = acme.axios.defaults
  const settings = acmeClientSettings()
  if (settings) {
    acmeClientRetries ??= settings.retryMaxAttempts
    settings.retryMaxAttempts = opts.requestRetries ?? acmeClientRetries
  } else if (opts.requestRetries !== undefined)
    opts.logger.warn("this acme-client has no retry setting; a CA's errors are retried as it decides")
  defaults.timeout = opts.requestTimeoutMs ?? REQUEST_TIMEOUT_MS
  const agent = opts.caCert ? new Agent({ ca: [...rootCertificates, opts.caCert] }) : undefined
  defaults.httpsAgent = agent
  return agent
}

// acme-client 5.4 loses the network error of a request it gives up on (refused, DNS, TLS trust) and
// throws "Cannot read properties of undefined (reading 'config')" instead. Asking the directory
// ourselves tells the operator what is actually wrong.
function networkProblem(url: string, agent: Agent | undefined, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const req = httpsRequest(url, { agent, timeout: timeoutMs }, (res) => {
      res.resume()
      resolve(undefined)
    })
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs / 1000} s`)))
    req.on('error', (err) => resolve(err.message))
    req.end()
  })
}

async function loadAccountKey(file: string, log: Logger): Promise<Buffer> {
  let pem: Buffer
  try {
    pem = await readFile(file)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw wrap(`reading the ACME account key ${file}`, err)
    const key = await acme.crypto.createPrivateEcdsaKey('P-256')
    await mkdir(dirname(file), { recursive: true })
    await writeFileAtomic(file, key, { mode: 0o600, forceMode: true })
    log.info('created ACME account key', { file, type: 'ecdsa-p256' })
    return key
  }
  try {
    acme.crypto.getJwk(pem)
  } catch (err) {
    // Never replaced: the key is the account; a new one would orphan it (and its EAB binding).
    throw wrap(
      `reading the ACME account key ${file}: expected a PEM private key, got something else; move it away to start a new account`,
      err,
    )
  }
  return pem
}

const CHALLENGE_PATH = '/.well-known/acme-challenge/'

/** Serves key authorizations by token; listens from the first pending challenge to the last. */
function http01Responder(port: number, address: string | undefined, log: Logger) {
  const tokens = new Map<string, string>()
  let listening: Promise<Server> | undefined
  let closing: Promise<void> = Promise.resolve()

  const listen = async (): Promise<Server> => {
    const server = createServer((req, res) => {
      const token = req.url?.startsWith(CHALLENGE_PATH) ? req.url.slice(CHALLENGE_PATH.length) : undefined
      const answer = token === undefined ? undefined : tokens.get(token)
      log.debug('HTTP-01 request', {
        method: req.method,
        path: req.url,
        from: req.socket.remoteAddress,
        answered: answer !== undefined,
      })
      if (req.method !== 'GET' || answer === undefined) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n')
        return
      }
      res.writeHead(200, { 'content-type': 'text/plain' }).end(answer)
    })
    server.listen(port, address)
    try {
      await once(server, 'listening')
    } catch (err) {
      throw wrap(`listening for ACME HTTP-01 challenges on ${address ?? '*'}:${port}`, err)
    }
    log.info('HTTP-01 listener open', { port, address })
    return server
  }

  return {
    async add(token: string, keyAuthorization: string): Promise<void> {
      tokens.set(token, keyAuthorization)
      listening ??= closing.then(listen)
      await listening
    },
    async remove(token: string): Promise<void> {
      tokens.delete(token)
      if (tokens.size > 0 || listening === undefined) return
      const server = listening
      listening = undefined
      closing = server.then(
        (s) => {
          s.closeAllConnections()
          return new Promise<void>((resolve) => s.close(() => resolve()))
        },
        () => undefined,
      )
      await closing
      log.info('HTTP-01 listener closed', { port })
    },
  }
}

/**
 * Ask the CA for a certificate for `domains`, with a fresh ECDSA P-256 key. Throws on any failure;
 * nothing is written except the account key on first use.
 */
export async function obtainAcmeCertificate(opts: AcmeOptions): Promise<KeyAndCert> {
  const log = opts.logger
  const names = opts.domains.join(',')
  const agent = configureTransport(opts)
  const accountKey = await loadAccountKey(opts.accountKeyFile, log)
  const client = new acme.Client({
    directoryUrl: opts.directoryUrl,
    accountKey,
    ...(opts.eab ? { externalAccountBinding: { kid: opts.eab.kid, hmacKey: opts.eab.hmacKey } } : {}),
  })
  const responder = http01Responder(opts.httpPort, opts.httpAddress, log)
  const key = await acme.crypto.createPrivateEcdsaKey('P-256')
  const [, csr] = await acme.crypto.createCsr({ commonName: opts.domains[0], altNames: [...opts.domains] }, key)
  log.info('ordering certificate', { directory: opts.directoryUrl, names, email: opts.email, eab_kid: opts.eab?.kid })
  try {
    const cert = await client.auto({
      csr,
      ...(opts.email ? { email: opts.email } : {}),
      // Using an ACME mode is the operator's agreement to the CA's terms (README, TLS section).
      termsOfServiceAgreed: true,
      challengePriority: ['http-01'],
      // acme-client's self-check fetches the name on port 80 from inside; behind NAT without
      // hairpinning that fails although the CA would succeed. The CA's own check is the one that counts.
      skipChallengeVerification: true,
      challengeCreateFn: async (authz, challenge, keyAuthorization) => {
        if (challenge.type !== 'http-01') {
          const offered = authz.challenges.map((c) => c.type).join(', ')
          throw new Error(`${authz.identifier.value}: the CA offers no http-01 challenge, only ${offered}`)
        }
        await responder.add(challenge.token, keyAuthorization)
      },
      challengeRemoveFn: async (_authz, challenge) => responder.remove(challenge.token),
    })
    return { cert, key: key.toString() }
  } catch (err) {
    const problem =
      err instanceof TypeError
        ? await networkProblem(opts.directoryUrl, agent, opts.requestTimeoutMs ?? REQUEST_TIMEOUT_MS)
        : undefined
    throw wrap(
      `obtaining a certificate for ${names} from ${opts.directoryUrl}`,
      problem ? new Error(`cannot reach the CA: ${problem}`, { cause: err }) : err,
    )
  }
}
