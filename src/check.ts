// `privatedial check`: what Asterisk would reject or silently ignore in a config dir, as file:line
// problems, before Asterisk reads it.
import { readdir } from 'node:fs/promises'
import { directives, printConf, readingOrder, sections, type ConfDoc } from './config/conf.ts'
import { readConf, readConfTree } from './config/files.ts'
import { checkDialplan } from './config/dialplan-check.ts'
import { ConfigError, ConfSyntaxError } from './base/errors.ts'

/** Templates must exist, and Asterisk only finds ones defined above the section that names them. */
export function templateProblems(docs: ConfDoc[]): string[] {
  const problems: string[] = []
  const seen = new Map<string, boolean>()
  const defined = new Set(docs.flatMap(sections).map((s) => s.name))
  for (const { doc, section: s } of readingOrder(docs)) {
    for (const t of s.templates) {
      if (!defined.has(t))
        problems.push(`${doc.file}:${s.line}: [${s.name}] inherits template \`${t}\`, which is not defined`)
      else if (!seen.has(t))
        problems.push(
          `${doc.file}:${s.line}: [${s.name}] inherits template \`${t}\`, which is defined only further down; define it above`,
        )
    }
    seen.set(s.name, true)
  }
  return problems
}

/** Files no other file includes: the ones Asterisk's modules open themselves. */
function roots(docs: Map<string, ConfDoc>): string[] {
  const included = new Set([...docs.values()].flatMap((d) => directives(d).map((x) => x.target)))
  return [...docs.keys()].filter((f) => !included.has(f)).sort()
}

export interface CheckResult {
  problems: string[]
  /** What Asterisk runs with but a user would miss, e.g. a user who can't call emergency numbers. */
  warnings: string[]
  files: number
  /** Sections of pjsip_endpoint.conf that are not templates: the trunks and users defined. */
  endpoints: number
}

/** app_minivm copies mailcmd into a 160-byte buffer: a longer one is cut short without a word. */
export const MINIVM_MAILCMD_MAX = 159

function mailcmdProblems(docs: Map<string, ConfDoc>): string[] {
  const doc = docs.get('minivm.conf')
  const entry =
    doc &&
    sections(doc)
      .filter((s) => s.name === 'general')
      .flatMap((s) => s.entries)
      .filter((e) => e.key === 'mailcmd')
      .at(-1)
  const bytes = entry ? Buffer.byteLength(entry.value) : 0
  if (!doc || !entry || bytes <= MINIVM_MAILCMD_MAX) return []
  return [
    `${doc.file}:${entry.line}: mailcmd is ${bytes} bytes; MiniVM keeps only the first ${MINIVM_MAILCMD_MAX} and would run \`${entry.value.slice(0, MINIVM_MAILCMD_MAX)}\`: shorten it (the password belongs in SMTP_PASSWORD, not -p)`,
  ]
}

/** websms.conf is read by the WebSMS service, not Asterisk: its own rules apply. */
async function websmsProblems(docs: Map<string, ConfDoc>): Promise<string[]> {
  const doc = docs.get('websms.conf')
  if (!doc) return []
  const { parseWebsmsConf } = await import('./websms/config.ts')
  try {
    parseWebsmsConf(printConf(doc), doc.file)
    return []
  } catch (err) {
    if (err instanceof ConfigError) return err.problems
    throw err
  }
}

export async function checkConfDir(confDir: string): Promise<CheckResult> {
  const problems: string[] = []
  const docs = new Map<string, ConfDoc>()
  let names: string[]
  try {
    names = (await readdir(confDir)).filter((f) => f.endsWith('.conf')).sort()
  } catch (err) {
    return {
      problems: [`config dir ${confDir} can't be read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`],
      warnings: [],
      files: 0,
      endpoints: 0,
    }
  }
  for (const name of names) {
    try {
      const doc = await readConf(confDir, name)
      if (doc) docs.set(name, doc)
    } catch (err) {
      if (err instanceof ConfSyntaxError) problems.push(err.message)
      else if (err instanceof ConfigError) problems.push(...err.problems)
      else throw err
    }
  }
  const endpointFile = docs.get('pjsip_endpoint.conf')
  const endpoints = endpointFile ? sections(endpointFile).filter((s) => !s.isTemplate).length : 0
  if (problems.length) return { problems, warnings: [], files: names.length, endpoints }
  const trees = new Map<string, ConfDoc[]>()
  for (const root of roots(docs)) {
    const tree = await readConfTree(confDir, root, docs)
    problems.push(...tree.missing, ...templateProblems(tree.docs))
    trees.set(root, tree.docs)
  }
  const dialplan = checkDialplan(trees)
  problems.push(...dialplan.problems, ...(await websmsProblems(docs)), ...mailcmdProblems(docs))
  return { problems, warnings: dialplan.warnings, files: names.length, endpoints }
}
