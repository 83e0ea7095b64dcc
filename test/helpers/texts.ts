// A test PBX with the texts service beside it: real Asterisk on the shipped configuration, with
// qualify on for the test users' phones (they answer OPTIONS) and the service's ports free ones.
import { join } from 'node:path'
import { setValue } from '../../src/config/conf.ts'
import { memoryLogger } from '../../src/base/log.ts'
import { readSettings } from '../../src/config/settings.ts'
import type { AsteriskView, ServiceContext } from '../../src/service.ts'
import { freePort, startTestPbx, USERS, type AsteriskBinary, type TestPbx, type UserName } from './asterisk.ts'
import { startPhone, type Phone } from './phone.ts'

export interface TextsPbx extends TestPbx {
  etc: string
  storePort: number
  amiPort: number
  /** The env a texts service for this PBX reads. */
  env(more?: Record<string, string>): Record<string, string>
  /** A context for a service run in this process. */
  context(env: Record<string, string>): ServiceContext & { log: ReturnType<typeof memoryLogger> }
  /** A phone of `user`, not yet registered; `callId`: the same phone on another network. */
  phone(user: UserName, callId?: string): Promise<Phone>
}

export async function startTextsPbx(
  asterisk: AsteriskBinary,
  storeDir: string,
  append?: Record<string, string>,
): Promise<TextsPbx> {
  const [storePort, amiPort, websmsApiPort] = [await freePort(), await freePort(), await freePort()]
  const pbx = await startTestPbx(asterisk, {
    edit: {
      'pjsip_endpoint.conf': (doc) => setValue(doc, 'w_term:test', 'aor/qualify_frequency', '60'),
      'extensions_local.conf': (doc) => {
        setValue(doc, 'globals', 'TEXT_STORE_PORT', String(storePort))
        setValue(doc, 'globals', 'WEBSMS_API_PORT', String(websmsApiPort))
      },
    },
    append,
  })
  const etc = join(pbx.dir, 'etc')
  const env = (more: Record<string, string> = {}) => ({
    ASTERISK_CONF_DIR: etc,
    TEXT_STORE_DIR: storeDir,
    AMI_PORT: String(amiPort),
    ...more,
  })
  const view: AsteriskView = {
    onLine: () => {},
    // Asterisk is up already: a listener runs at once, as run does for one added after boot.
    onReady: (l) => l(),
    rx: pbx.rx,
    booted: () => true,
  }
  return {
    ...pbx,
    etc,
    storePort,
    amiPort,
    env,
    context(e) {
      const { settings, problems } = readSettings(e, { readFile: () => '' })
      if (problems.length) throw new Error(problems.join('\n'))
      return {
        settings,
        confDir: etc,
        log: memoryLogger('texts'),
        asterisk: view,
        signal: new AbortController().signal,
      }
    },
    phone: (user, callId) =>
      startPhone({ target: { host: '127.0.0.1', port: pbx.sipPort }, user, password: USERS[user].password, callId }),
  }
}
