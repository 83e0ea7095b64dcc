// manager.conf as `run` writes it at every start: the manager interface (AMI) on 127.0.0.1 only,
// one account whose secret is new each start, so no secret outlives the process that knows it and
// nothing but this host can reach the interface.
import { randomBytes } from 'node:crypto'
import { chown } from 'node:fs/promises'
import { join } from 'node:path'
import { writeFileAtomic } from '../base/atomic-write.ts'

export interface ManagerAccount {
  host: '127.0.0.1'
  port: number
  username: string
  secret: string
}

export const MANAGER_USER = 'privatedial'

export function newManagerAccount(port: number): ManagerAccount {
  return { host: '127.0.0.1', port, username: MANAGER_USER, secret: randomBytes(24).toString('base64url') }
}

/** The file's text. Pure. Read: contact states (system); write: qualify (system), MessageSend (message). */
export function managerConf(account: ManagerAccount): string {
  return [
    '; Written by privatedial run at every start; edits here are replaced. The manager interface (AMI)',
    '; listens on 127.0.0.1 only, for the texts service; its secret is new at every start.',
    '[general]',
    'enabled = yes',
    `bindaddr = ${account.host}`,
    `port = ${account.port}`,
    'webenabled = no',
    'displayconnects = no',
    '',
    `[${account.username}]`,
    `secret = ${account.secret}`,
    'deny = 0.0.0.0/0.0.0.0',
    'permit = 127.0.0.1/255.255.255.255',
    'read = system',
    'write = system,message',
    '',
  ].join('\n')
}

/**
 * Writes manager.conf atomically, readable by its owner and group only (it holds the secret); with
 * `owner`, the Asterisk user that must read it owns it.
 */
export async function writeManagerConf(
  confDir: string,
  account: ManagerAccount,
  owner?: { uid: number; gid: number },
): Promise<string> {
  const path = join(confDir, 'manager.conf')
  await writeFileAtomic(path, managerConf(account), { mode: 0o640, forceMode: true })
  if (owner) await chown(path, owner.uid, owner.gid)
  return path
}
