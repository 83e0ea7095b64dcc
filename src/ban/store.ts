// The bans on the volume (BAN_FILE): written by the ban service only, after every change, so a
// restart restores them and `privatedial bans` can list them without asking the running service.
// `privatedial bans delete` does not edit it (two writers would lose each other's changes): it
// leaves a request in the lift directory beside it, which the service watches, acts on and removes.
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { writeFileAtomic } from '../base/atomic-write.ts'
import type { Snapshot } from './policy.ts'

export type Mode = 'nft' | 'asterisk' | 'off'

export interface Saved extends Snapshot {
  version: 1
  /** How the bans were enforced when saved. */
  mode: Mode
  savedAt: number
}

export async function loadBans(file: string): Promise<Saved | undefined> {
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
  const data = JSON.parse(text) as Partial<Saved>
  if (data.version !== 1 || !Array.isArray(data.bans) || !Array.isArray(data.records))
    throw new Error(`${file} is not a ban list of version 1 (it has version ${String(data.version)})`)
  return data as Saved
}

export async function saveBans(file: string, data: Saved): Promise<void> {
  await mkdir(dirname(file), { recursive: true })
  await writeFileAtomic(file, JSON.stringify(data) + '\n', { mode: 0o600 })
}

/** Where lift requests wait: one empty file per address. */
export const liftDir = (file: string) => join(dirname(file), 'bans-lift')

export async function requestLift(file: string, address: string): Promise<void> {
  await mkdir(liftDir(file), { recursive: true })
  await writeFile(join(liftDir(file), address), '')
}

/** The addresses asked to be lifted; each request stays until `liftDone`, which the CLI waits for. */
export async function liftRequests(file: string): Promise<string[]> {
  return readdir(liftDir(file)).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return []
    throw err
  })
}

export async function liftDone(file: string, address: string): Promise<void> {
  await rm(join(liftDir(file), address), { force: true })
}

export async function liftPending(file: string, address: string): Promise<boolean> {
  return (await liftRequests(file)).includes(address)
}
