// What Asterisk loads without a word but fails on when a call takes the path: a Goto or Gosub to a
// context, extension or label that isn't there, an include of a missing context, a global the dial
// plan reads but nobody defines, an endpoint pointing at a context or trunk that doesn't exist.
// Pure: parsed documents in (conf.ts), "file:line: problem" out.
import { readingOrder, sections, templateResolver, type ConfDoc, type Section } from './conf.ts'
import { EMERGENCY_NUMBER } from './settings.ts'

/** Sections of extensions.conf that hold settings, not extensions. */
const NOT_CONTEXTS = new Set(['general', 'globals'])

interface Extension {
  /** Priority labels: `n(label)`. */
  labels: Set<string>
  priorities: Set<string>
}

interface Context {
  extensions: Map<string, Extension>
  includes: string[]
}

interface Target {
  context: string | undefined
  exten: string | undefined
  priority: string
}

/** A place in the dial plan a line can jump to or call, as written: [[context,]exten,]priority. */
interface Jump {
  what: string
  target: Target
  file: string
  line: number
  /** The context and extension the line belongs to, for targets relative to them. */
  context: string
  exten: string
}

const dynamic = (s: string) => s.includes('$')

/**
 * Split on `sep` where it stands outside ${...}, $[...], (...) and quotes, as Asterisk's own
 * argument parsing does for these applications.
 */
function splitTop(s: string, sep: string, limit = Infinity): string[] {
  const out: string[] = []
  let depth = 0
  let quoted = false
  let start = 0
  for (let i = 0; i < s.length && out.length < limit - 1; i++) {
    const c = s[i]
    if (c === '\\') i++
    else if (c === '"') quoted = !quoted
    else if (quoted) continue
    else if (c === '(' || c === '[' || c === '{') depth++
    else if (c === ')' || c === ']' || c === '}') depth = Math.max(0, depth - 1)
    else if (c === sep && depth === 0) {
      out.push(s.slice(start, i))
      start = i + 1
    }
  }
  out.push(s.slice(start))
  return out.map((p) => p.trim())
}

/** `App(args)` into its name and argument string; undefined for a line without an application. */
function application(s: string): { app: string; args: string } | undefined {
  const m = /^\s*([A-Za-z_][\w]*)\s*(?:\((.*)\))?\s*$/s.exec(s)
  return m ? { app: m[1]!.toLowerCase(), args: m[2] ?? '' } : undefined
}

function target(spec: string): Target {
  // A Gosub's arguments ride on the priority: 1(arg1,arg2).
  const parts = splitTop(spec, ',').map((p) => p.replace(/\(.*\)$/s, '').trim())
  if (parts.length >= 3) return { context: parts[0], exten: parts[1], priority: parts[2]! }
  if (parts.length === 2) return { context: undefined, exten: parts[0], priority: parts[1]! }
  return { context: undefined, exten: undefined, priority: parts[0]! }
}

/** The jump targets of one application call. */
function jumpsOf(app: string, args: string): { what: string; target: Target }[] {
  const conditional = (what: string) => {
    const [, branches = ''] = splitTop(args, '?', 2)
    return splitTop(branches, ':')
      .filter(Boolean)
      .map((b) => ({ what, target: target(b) }))
  }
  switch (app) {
    case 'goto':
    case 'gosub':
      return args ? [{ what: app === 'goto' ? 'Goto' : 'Gosub', target: target(args) }] : []
    case 'gotoif':
      return conditional('GotoIf')
    case 'gosubif':
      return conditional('GosubIf')
    case 'set': {
      const m = /^\s*CHANNEL\(hangup_handler_(?:push|wipe)\)\s*=(.*)$/is.exec(args)
      return m ? [{ what: 'hangup handler', target: target(m[1]!) }] : []
    }
    default:
      return []
  }
}

/** Does extension pattern or name `pattern` match the literal extension `exten`? */
function matches(pattern: string, exten: string): boolean {
  if (pattern === exten) return true
  if (!pattern.startsWith('_')) return false
  let re = ''
  const p = pattern.slice(1)
  for (let i = 0; i < p.length; i++) {
    const c = p[i]!
    if (c === 'X') re += '[0-9]'
    else if (c === 'Z') re += '[1-9]'
    else if (c === 'N') re += '[2-9]'
    else if (c === '.') re += '.+'
    else if (c === '!') re += '.*'
    else if (c === '[') {
      const end = p.indexOf(']', i)
      re += `[${p.slice(i + 1, end).replace(/[\\\]^]/g, '\\$&')}]`
      i = end
    } else re += c.replace(/[.*+?^${}()|\\]/g, '\\$&')
  }
  return new RegExp(`^${re}$`).test(exten)
}

/** The dial plan of extensions.conf and what it includes, and every jump its lines make. */
function readDialplan(docs: ConfDoc[]): { contexts: Map<string, Context>; jumps: Jump[]; problems: string[] } {
  const contexts = new Map<string, Context>()
  const jumps: Jump[] = []
  const problems: string[] = []
  const includes: { file: string; line: number; name: string }[] = []
  for (const { doc, section: s } of readingOrder(docs)) {
    if (NOT_CONTEXTS.has(s.name)) continue
    if (s.extend && !contexts.has(s.name)) {
      problems.push(`${doc.file}:${s.line}: [${s.name}](+) adds to a context that is not defined above it`)
    }
    const context: Context = contexts.get(s.name) ?? { extensions: new Map(), includes: [] }
    contexts.set(s.name, context)
    let current: string | undefined
    for (const e of s.entries) {
      if (e.key === 'include') {
        const name = splitTop(e.value, ',')[0]!
        context.includes.push(name)
        includes.push({ file: doc.file, line: e.line, name })
        continue
      }
      if (e.key !== 'exten' && e.key !== 'same') continue
      const [exten, priority, app = ''] =
        e.key === 'exten' ? splitTop(e.value, ',', 3) : [current, ...splitTop(e.value, ',', 2)]
      if (exten === undefined || priority === undefined) {
        problems.push(`${doc.file}:${e.line}: \`same =>\` before any \`exten =>\` in [${s.name}]`)
        continue
      }
      current = exten
      const ext = context.extensions.get(exten) ?? { labels: new Set(), priorities: new Set() }
      context.extensions.set(exten, ext)
      const label = /\(([^)]*)\)$/.exec(priority)?.[1]
      if (label) ext.labels.add(label)
      ext.priorities.add(priority.replace(/\(.*\)$/, ''))
      if (priority === 'hint') continue
      const call = application(app)
      if (!call) continue
      for (const j of jumpsOf(call.app, call.args))
        jumps.push({ ...j, file: doc.file, line: e.line, context: s.name, exten })
    }
  }
  for (const i of includes) {
    if (!dynamic(i.name) && !contexts.has(i.name))
      problems.push(`${i.file}:${i.line}: include => ${i.name}: no such context`)
  }
  return { contexts, jumps, problems }
}

/** Extensions of a context matching `exten`, its own and those of the contexts it includes, as Asterisk looks them up. */
function lookup(contexts: Map<string, Context>, name: string, exten: string, seen: string[] = []): Extension[] {
  const context = contexts.get(name)
  if (!context || seen.includes(name)) return []
  const own = [...context.extensions].filter(([pattern]) => matches(pattern, exten)).map(([, e]) => e)
  return [...own, ...context.includes.flatMap((i) => lookup(contexts, i, exten, [...seen, name]))]
}

function jumpProblem(j: Jump, contexts: Map<string, Context>): string | undefined {
  const where = `${j.file}:${j.line}: ${j.what} to ${[j.target.context, j.target.exten, j.target.priority].filter((p) => p !== undefined).join(',')}`
  const contextName = j.target.context ?? j.context
  if (dynamic(contextName)) return undefined
  if (!contexts.has(contextName)) return `${where}: no context [${contextName}]`
  const extenName = j.target.exten ?? j.exten
  if (dynamic(extenName)) return undefined
  const exts = lookup(contexts, contextName, extenName)
  if (!exts.length) return `${where}: no extension ${extenName} in [${contextName}]`
  const p = j.target.priority
  if (dynamic(p) || /^\d+$/.test(p) || p === 'n') return undefined
  if (!exts.some((e) => e.labels.has(p))) return `${where}: no priority label ${p} in ${extenName}@${contextName}`
  return undefined
}

/**
 * Globals the dial plan reads as ${GLOBAL(NAME)}, against those [globals] defines or Set(GLOBAL(...))
 * writes. Asterisk reads a missing one as empty, and the dial plan takes empty as "off" (no texts
 * service, no emergency fallback trunk, no ring timeout): a warning, not a reason to refuse to start,
 * since an upgrade keeps a user's edited extensions_local.conf beside a new extensions.conf.
 */
function globalWarnings(docs: ConfDoc[]): string[] {
  const defined = new Set<string>()
  const reads: { file: string; line: number; name: string }[] = []
  for (const doc of docs) {
    for (const s of sections(doc)) {
      for (const e of s.entries) {
        if (s.name === 'globals') defined.add(e.key)
        for (const m of e.value.matchAll(/GLOBAL\(([^)$]+)\)(\s*=)?/g)) {
          if (m[2]) defined.add(m[1]!.trim())
          else reads.push({ file: doc.file, line: e.line, name: m[1]!.trim() })
        }
      }
    }
  }
  return reads
    .filter((r) => !defined.has(r.name))
    .map(
      (r) =>
        `${r.file}:${r.line}: reads global ${r.name}, which [globals] does not define, so it is empty; add it to extensions_local.conf (extensions_local.conf.new, if there is one, has the shipped value)`,
    )
}

/** Endpoint sections (wizard or plain) and the setting each names a context with. */
const ENDPOINT_CONTEXT_KEYS = new Map([
  ['wizard', ['endpoint/context', 'endpoint/message_context', 'hint_context']],
  ['endpoint', ['context', 'message_context']],
])

/** The settings that make an endpoint a user: it authenticates its phones, and it has a number. */
const USER_KEYS = new Map([
  ['wizard', { auth: ['accepts_auth', 'inbound_auth/username'], callerid: 'endpoint/callerid' }],
  ['endpoint', { auth: ['auth'], callerid: 'callerid' }],
])

/** Every key endpointFacts reads. */
const ENDPOINT_KEYS = new Set([
  'type',
  'endpoint/set_var',
  ...[...ENDPOINT_CONTEXT_KEYS.values()].flat(),
  ...[...USER_KEYS.values()].flatMap((k) => [...k.auth, k.callerid]),
])

/** What the endpoint checks need of one object, through its templates. */
interface EndpointFacts {
  type: string | undefined
  /** [key, context] for each context the object names. */
  contexts: [string, string][]
  trunk: string | undefined
  /** A user, as the dial plan's sub_dial_emergency tells one from a trunk. */
  user: boolean
}

/**
 * A key's values in one section, its templates' first. Per section, not per name: in pjsip.conf an
 * endpoint, its aor and its auth often share a name.
 */
function valuesOf(resolve: (name: string, key: string) => readonly string[], section: Section, key: string): string[] {
  const out: string[] = []
  for (const t of section.templates) out.push(...resolve(t, key))
  for (const e of section.entries) if (e.key === key) out.push(e.value)
  return out
}

function endpointFacts(resolve: (name: string, key: string) => readonly string[], section: Section): EndpointFacts {
  const type = valuesOf(resolve, section, 'type').at(-1)
  const contexts: [string, string][] = []
  for (const key of ENDPOINT_CONTEXT_KEYS.get(type ?? '') ?? []) {
    const context = valuesOf(resolve, section, key).at(-1)
    if (context) contexts.push([key, context])
  }
  const vars = type === 'wizard' ? valuesOf(resolve, section, 'endpoint/set_var').map((v) => v.split('=')) : []
  const trunk = vars
    .filter(([name]) => name?.trim() === 'TRUNK_ENDPOINT')
    .at(-1)
    ?.slice(1)
    .join('=')
    .trim()
  const keys = USER_KEYS.get(type ?? '')
  const authenticates = keys?.auth.some((k) => {
    const v = valuesOf(resolve, section, k).at(-1)
    return v !== undefined && v !== '' && v !== 'no'
  })
  const number = keys && /<\s*\+?\d+\s*>|^\s*\+?\d+\s*$/.test(valuesOf(resolve, section, keys.callerid).at(-1) ?? '')
  return { type, contexts, trunk, user: !!authenticates && !!number }
}

interface EndpointObject {
  doc: ConfDoc
  section: Section
  facts: EndpointFacts
}

/** The objects of pjsip.conf and pjsip_wizard.conf (with the files they include) that have a type. */
function endpointObjects(trees: ConfDoc[][]): EndpointObject[] {
  const objects: EndpointObject[] = []
  for (const docs of trees) {
    const resolve = templateResolver(docs)
    // A thousand users typically share one template list and set none of these keys themselves:
    // such sections have the same facts, worked out once per list.
    const byTemplates = new Map<string, EndpointFacts>()
    for (const doc of docs) {
      for (const section of sections(doc)) {
        if (section.isTemplate) continue
        const shared = !section.entries.some((e) => ENDPOINT_KEYS.has(e.key))
        const id = section.templates.join(',')
        let facts = shared ? byTemplates.get(id) : undefined
        if (!facts) {
          facts = endpointFacts(resolve, section)
          if (shared) byTemplates.set(id, facts)
        }
        if (facts.type) objects.push({ doc, section, facts })
      }
    }
  }
  return objects
}

const endpointNames = (objects: EndpointObject[]) =>
  new Set(objects.filter((o) => o.facts.type === 'wizard' || o.facts.type === 'endpoint').map((o) => o.section.name))

/** Contexts that endpoints name, and trunks that users name in TRUNK_ENDPOINT, must exist. */
function endpointProblems(objects: EndpointObject[], contexts: Map<string, Context>): string[] {
  const endpoints = endpointNames(objects)
  const problems: string[] = []
  for (const { doc, section, facts } of objects) {
    const at = () => `${doc.file}:${section.line}: [${section.name}]`
    for (const [key, context] of facts.contexts) {
      if (!dynamic(context) && !contexts.has(context))
        problems.push(`${at()} ${key} = ${context}: no such context in the dial plan`)
    }
    if (facts.trunk && !endpoints.has(facts.trunk))
      problems.push(`${at()} TRUNK_ENDPOINT=${facts.trunk}: no such endpoint`)
  }
  return problems
}

/** A [globals] entry, the last one Asterisk reads, with where it is. */
function globalEntry(docs: ConfDoc[], name: string): { file: string; line: number; value: string } | undefined {
  let found: { file: string; line: number; value: string } | undefined
  for (const { doc, section } of readingOrder(docs)) {
    if (section.name !== 'globals') continue
    for (const e of section.entries) if (e.key === name) found = { file: doc.file, line: e.line, value: e.value }
  }
  return found
}

const SHOWN_USERS = 5

/**
 * Emergency calls (sub_dial_emergency): the numbers must be ones the dial plan can tell, the default
 * trunk must exist, and a user with no trunk to call them through is worth a warning.
 */
function emergencyChecks(dialplan: ConfDoc[], objects: EndpointObject[]): { problems: string[]; warnings: string[] } {
  const problems: string[] = []
  const numbers = globalEntry(dialplan, 'EMERGENCY_NUMBERS')
  const wrong = numbers?.value.split(',').find((n) => !EMERGENCY_NUMBER.test(n))
  if (numbers && numbers.value !== '' && wrong !== undefined)
    problems.push(
      `${numbers.file}:${numbers.line}: EMERGENCY_NUMBERS must be numbers of 2 to 6 digits separated by commas (no spaces), got \`${numbers.value}\``,
    )
  const fallback = globalEntry(dialplan, 'EMERGENCY_TRUNK')
  if (fallback?.value && !endpointNames(objects).has(fallback.value))
    problems.push(`${fallback.file}:${fallback.line}: EMERGENCY_TRUNK=${fallback.value}: no such endpoint`)
  const users = objects.filter((o) => o.facts.user)
  const stranded = fallback?.value ? [] : users.filter((o) => !o.facts.trunk).map((o) => o.section.name)
  if (!stranded.length || !numbers?.value) return { problems, warnings: [] }
  const who =
    stranded.length === users.length
      ? 'no user can call emergency numbers: no user has a TRUNK_ENDPOINT'
      : `${stranded.slice(0, SHOWN_USERS).join(', ')}${stranded.length > SHOWN_USERS ? ` and ${stranded.length - SHOWN_USERS} more` : ''} can't call emergency numbers: ${stranded.length === 1 ? 'this user has' : 'these users have'} no TRUNK_ENDPOINT`
  return {
    problems,
    warnings: [
      `${who} and EMERGENCY_TRUNK in extensions_local.conf is empty; set it to a trunk (e.g. itsp:mydoe) or the env variable EMERGENCY_TRUNK`,
    ],
  }
}

/**
 * Problems in the dial plan and the endpoints that enter it, and warnings: what works but leaves a
 * user without something they rely on. `trees` maps a file Asterisk opens to it and the files it
 * includes, in reading order (check.ts's readConfTree): extensions.conf, pjsip.conf and
 * pjsip_wizard.conf are read.
 */
export function checkDialplan(trees: ReadonlyMap<string, ConfDoc[]>): { problems: string[]; warnings: string[] } {
  const dialplan = trees.get('extensions.conf') ?? []
  const { contexts, jumps, problems } = readDialplan(dialplan)
  const objects = endpointObjects([trees.get('pjsip.conf') ?? [], trees.get('pjsip_wizard.conf') ?? []])
  const emergency = emergencyChecks(dialplan, objects)
  return {
    problems: [
      ...problems,
      ...jumps.flatMap((j) => jumpProblem(j, contexts) ?? []),
      ...endpointProblems(objects, contexts),
      ...emergency.problems,
    ],
    warnings: [...globalWarnings(dialplan), ...emergency.warnings],
  }
}

export const dialplanProblems = (trees: ReadonlyMap<string, ConfDoc[]>): string[] => checkDialplan(trees).problems
