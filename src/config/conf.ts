// Asterisk .conf files: parse, edit, print. Pure; the only I/O is in conf-files.ts.
//
// The document is the file's lines, each kept byte for byte, with what Asterisk reads from it
// beside. Printing joins the raw lines, so an unedited document prints as it was read, and an edit
// rewrites only the line it targets.
import { ConfSyntaxError } from '../base/errors.ts'

export type Op = '=' | '=>'

export interface Entry {
  key: string
  op: Op
  /** As Asterisk reads it: trimmed, `\;` unescaped. */
  value: string
  line: number
}

export interface Directive {
  kind: 'include' | 'tryinclude' | 'exec'
  target: string
  line: number
}

export interface Section {
  name: string
  line: number
  /** `(!)`: a template, not an object of its own. */
  isTemplate: boolean
  /** `(+)`: adds to an earlier section of the same name. */
  extend: boolean
  templates: string[]
  entries: Entry[]
}

type Parsed =
  | { kind: 'blank' }
  | { kind: 'section'; section: Section }
  | { kind: 'entry'; entry: Entry; valueStart: number; valueEnd: number }
  | { kind: 'directive'; directive: Directive }

interface Line {
  raw: string
  parsed: Parsed
}

export interface ConfDoc {
  file: string
  eol: '\n' | '\r\n'
  lines: Line[]
}

/** Asterisk opens a block comment at `;--` but not at `;---`, so `;-----` rulers are plain comments. */
const opensBlock = (raw: string, i: number) => raw.startsWith(';--', i) && raw[i + 3] !== '-'

/**
 * The code of one line with comments removed, and where each kept character came from, so a value
 * can be located in the raw line. `depth` is the block-comment nesting carried between lines
 * (Asterisk nests `;-- --;`).
 */
function stripComments(raw: string, depth: number): { code: string; map: number[] | undefined; depth: number } {
  // Most lines have no ';' at all: their code is the line itself, positions unchanged.
  if (depth === 0 && !raw.includes(';')) return { code: raw, map: undefined, depth }
  let code = ''
  const map: number[] = []
  for (let i = 0; i < raw.length; i++) {
    const c = raw[i]
    if (depth > 0) {
      if (raw.startsWith('--;', i)) {
        depth--
        i += 2
      } else if (opensBlock(raw, i)) {
        depth++
        i += 2
      }
      continue
    }
    if (c === '\\' && raw[i + 1] === ';') {
      code += '\\;'
      map.push(i, i + 1)
      i++
      continue
    }
    if (c === ';') {
      if (opensBlock(raw, i)) {
        depth++
        i += 2
        continue
      }
      break
    }
    code += c
    map.push(i)
  }
  return { code, map, depth }
}

const unescape = (s: string) => (s.includes('\\;') ? s.replace(/\\;/g, ';') : s)

// Asterisk trims with isspace(): space, \t, \n, \v, \f, \r.
const isSpace = (c: number) => c === 32 || (c >= 9 && c <= 13)

function parseHeader(code: string, file: string, line: number): Section {
  const close = code.indexOf(']')
  if (close < 0) throw new ConfSyntaxError(file, line, `no closing ']' in section header \`${code.trim()}\``)
  const name = code.slice(1, close).trim()
  if (!name) throw new ConfSyntaxError(file, line, 'empty section name `[]`')
  const rest = code.slice(close + 1).trim()
  const section: Section = { name, line, isTemplate: false, extend: false, templates: [], entries: [] }
  if (!rest) return section
  if (!rest.startsWith('(') || !rest.endsWith(')')) {
    throw new ConfSyntaxError(file, line, `expected \`(options)\` after [${name}], got \`${rest}\``)
  }
  for (const opt of rest
    .slice(1, -1)
    .split(',')
    .map((o) => o.trim())) {
    if (opt === '!') section.isTemplate = true
    else if (opt === '+') section.extend = true
    else if (opt) section.templates.push(opt)
    else throw new ConfSyntaxError(file, line, `empty template name in \`${rest}\` of [${name}]`)
  }
  return section
}

/** One `key = value` / `key => value` line's code; positions are in the raw line. A string is the error. */
function parseEntry(code: string, map: number[] | undefined, rawLength: number) {
  const eq = code.indexOf('=')
  if (eq < 0) return `expected \`key = value\` or \`key => value\`, got \`${code.trim()}\``
  const key = code.slice(0, eq).trim()
  if (!key) return `missing key before '=' in \`${code.trim()}\``
  const op: Op = code[eq + 1] === '>' ? '=>' : '='
  let start = eq + op.length
  while (start < code.length && isSpace(code.charCodeAt(start))) start++
  let end = code.length
  while (end > start && isSpace(code.charCodeAt(end - 1))) end--
  const at = (i: number) => (map ? map[i]! : i)
  const valueStart = start < code.length ? at(start) : rawLength
  const valueEnd = end > start ? at(end - 1) + 1 : valueStart
  return { key, op, value: unescape(code.slice(start, end)), valueStart, valueEnd }
}

/** Blank and comment-only lines are most of a file; they share one (never mutated) value. */
const BLANK: Parsed = Object.freeze({ kind: 'blank' })

export function parseConf(text: string, file = '<string>'): ConfDoc {
  const rawLines = text.split('\n')
  const eol = rawLines.length > 1 && rawLines[0]!.endsWith('\r') ? '\r\n' : '\n'
  const lines: Line[] = []
  let depth = 0
  let openedAt = 0
  let current: Section | undefined
  for (let i = 0; i < rawLines.length; i++) {
    const raw = rawLines[i]!
    const lineNo = i + 1
    const stripped = stripComments(raw.endsWith('\r') ? raw.slice(0, -1) : raw, depth)
    if (depth === 0 && stripped.depth > 0) openedAt = lineNo
    depth = stripped.depth
    const code = stripped.code
    const trimmed = code.trim()
    let parsed: Parsed
    if (!trimmed) {
      parsed = BLANK
    } else if (trimmed.startsWith('#')) {
      const m = /^#\s*(include|tryinclude|exec)\s+(.+)$/.exec(trimmed)
      if (!m)
        throw new ConfSyntaxError(
          file,
          lineNo,
          `unknown directive \`${trimmed}\`; expected #include, #tryinclude or #exec`,
        )
      const target = m[2]!
        .trim()
        .replace(/^"(.*)"$/, '$1')
        .replace(/^<(.*)>$/, '$1')
      parsed = { kind: 'directive', directive: { kind: m[1] as Directive['kind'], target, line: lineNo } }
    } else if (trimmed.startsWith('[')) {
      current = parseHeader(trimmed, file, lineNo)
      parsed = { kind: 'section', section: current }
    } else {
      const e = parseEntry(code, stripped.map, raw.length)
      if (typeof e === 'string') throw new ConfSyntaxError(file, lineNo, e)
      if (!current) throw new ConfSyntaxError(file, lineNo, `\`${e.key}\` is outside any [section]`)
      const entry: Entry = { key: e.key, op: e.op, value: e.value, line: lineNo }
      current.entries.push(entry)
      parsed = { kind: 'entry', entry, valueStart: e.valueStart, valueEnd: e.valueEnd }
    }
    lines.push({ raw, parsed })
  }
  if (depth > 0) throw new ConfSyntaxError(file, openedAt, 'block comment `;--` opened here is never closed with `--;`')
  return { file, eol, lines }
}

export function printConf(doc: ConfDoc): string {
  return doc.lines.map((l) => l.raw).join('\n')
}

// A check asks for a document's sections and directives many times, and a 1,000-endpoint file is
// 5,000 lines: list them once per document. Only findOrAddSection changes either list; it drops them.
const indexes = new WeakMap<ConfDoc, { sections: Section[]; directives: Directive[] }>()

function indexOf(doc: ConfDoc): { sections: Section[]; directives: Directive[] } {
  let index = indexes.get(doc)
  if (!index) {
    index = { sections: [], directives: [] }
    for (const l of doc.lines) {
      if (l.parsed.kind === 'section') index.sections.push(l.parsed.section)
      else if (l.parsed.kind === 'directive') index.directives.push(l.parsed.directive)
    }
    indexes.set(doc, index)
  }
  return index
}

export function sections(doc: ConfDoc): readonly Section[] {
  return indexOf(doc).sections
}

export function directives(doc: ConfDoc): readonly Directive[] {
  return indexOf(doc).directives
}

/**
 * The sections of `docs` in the order Asterisk reads them: an included file's sections where its
 * #include stands (`docs` as conf-files.ts's readConfTree gives them, the opened file first);
 * documents no other one includes follow in the order given. Templates must be defined above
 * their use, and a `(+)` section's original above it, in this order.
 */
export function readingOrder(docs: readonly ConfDoc[]): { doc: ConfDoc; section: Section }[] {
  const byFile = new Map(docs.map((d) => [d.file, d]))
  const out: { doc: ConfDoc; section: Section }[] = []
  const visited = new Set<ConfDoc>()
  const visit = (doc: ConfDoc, open: string[]) => {
    visited.add(doc)
    for (const l of doc.lines) {
      if (l.parsed.kind === 'section') out.push({ doc, section: l.parsed.section })
      else if (l.parsed.kind === 'directive' && l.parsed.directive.kind !== 'exec') {
        const sub = byFile.get(l.parsed.directive.target)
        if (sub && !open.includes(sub.file)) visit(sub, [...open, sub.file])
      }
    }
  }
  for (const doc of docs) if (!visited.has(doc)) visit(doc, [doc.file])
  return out
}

/** Values of `key` set directly in every section named `name` (no templates), in file order. */
export function getValues(doc: ConfDoc, name: string, key: string): string[] {
  return sections(doc)
    .filter((s) => s.name === name)
    .flatMap((s) => s.entries.filter((e) => e.key === key).map((e) => e.value))
}

function checkText(what: string, s: string): void {
  if (/[\r\n\0]/.test(s))
    throw new RangeError(`${what} must be one line without control characters, got ${JSON.stringify(s)}`)
}

/** Asterisk reads `;` as a comment; a literal one is `\;`. */
export const escapeValue = (v: string) => v.replace(/;/g, '\\;')

const crOf = (raw: string) => (raw.endsWith('\r') ? '\r' : '')

function rewriteEntry(doc: ConfDoc, entry: Entry, value: string): boolean {
  if (entry.value === value) return false
  const line = doc.lines[entry.line - 1]!
  if (line.parsed.kind !== 'entry') throw new Error(`internal: line ${entry.line} of ${doc.file} is not an entry`)
  const cr = crOf(line.raw)
  const body = cr ? line.raw.slice(0, -1) : line.raw
  const { valueStart, valueEnd } = line.parsed
  // A value interleaved with a block comment can't be replaced in place; write the line anew.
  const newBody = body.slice(valueStart, valueEnd).includes(';--')
    ? `${entry.key} ${entry.op} ${escapeValue(value)}`
    : body.slice(0, valueStart) + escapeValue(value) + body.slice(valueEnd)
  const stripped = stripComments(newBody, 0)
  const e = parseEntry(stripped.code, stripped.map, newBody.length)
  if (typeof e === 'string') throw new Error(`internal: rewriting ${doc.file}:${entry.line} gave a bad line: ${e}`)
  entry.value = value
  doc.lines[entry.line - 1] = {
    raw: newBody + cr,
    parsed: { kind: 'entry', entry, valueStart: e.valueStart, valueEnd: e.valueEnd },
  }
  return true
}

/** Where a new entry for a section goes: after its last entry (or header), before trailing blanks and comments. */
function insertionIndex(section: Section): number {
  const last = section.entries.at(-1)
  return last ? last.line : section.line
}

/** Line numbers follow from position; re-derive them after lines were added or removed. */
function renumber(doc: ConfDoc): void {
  doc.lines.forEach((l, i) => {
    const p = l.parsed
    if (p.kind === 'entry') p.entry.line = i + 1
    else if (p.kind === 'section') p.section.line = i + 1
    else if (p.kind === 'directive') p.directive.line = i + 1
  })
}

/** `key = ` spelled as the section's previous entry spells it, so added lines match the file. */
function entryPrefix(doc: ConfDoc, section: Section, key: string, op: Op): string {
  const prev = section.entries.at(-1)
  if (prev) {
    const l = doc.lines[prev.line - 1]!
    if (l.parsed.kind === 'entry') {
      const body = l.raw.replace(/\r$/, '')
      const m = /^(\s*)\S.*?(\s*=>?\s*)$/.exec(body.slice(0, l.parsed.valueStart))
      if (m && m[2]!.trim() === op) return `${m[1]}${key}${m[2]}`
    }
  }
  return `${key} ${op} `
}

/** The section an added key goes to: the first non-template of that name, or a new one at the end. */
function findOrAddSection(doc: ConfDoc, name: string): Section {
  const found = sections(doc).filter((s) => s.name === name)
  const target = found.find((s) => !s.isTemplate) ?? found[0]
  if (target) return target
  const cr = doc.eol === '\r\n' ? '\r' : ''
  // Keep a final newline final: insert before the empty last element that split('\n') leaves.
  const at = doc.lines.at(-1)?.raw === '' ? doc.lines.length - 1 : doc.lines.length
  const gap = at > 0 && doc.lines[at - 1]!.raw.trim() !== ''
  const section: Section = { name, line: 0, isTemplate: false, extend: false, templates: [], entries: [] }
  const added: Line[] = [{ raw: `[${name}]${cr}`, parsed: { kind: 'section', section } }]
  if (gap) added.unshift({ raw: cr, parsed: BLANK })
  doc.lines.splice(at, 0, ...added)
  indexes.delete(doc)
  renumber(doc)
  return section
}

/**
 * Set `key` in section `name` to one value: the first occurrence is rewritten in place (later
 * duplicates are removed, since Asterisk would read them too), or the key is added to the section,
 * or the section is added at the end. Returns whether the text changed.
 */
export function setValue(doc: ConfDoc, name: string, key: string, value: string, op: Op = '='): boolean {
  return setValues(doc, name, key, [value], op)
}

/** Set a repeated key (e.g. local_net) to exactly these values, in order. */
export function setValues(doc: ConfDoc, name: string, key: string, values: string[], op: Op = '='): boolean {
  checkText(`[${name}] key`, key)
  for (const v of values) checkText(`[${name}] ${key}`, v)
  const holders = sections(doc).filter((s) => s.name === name && s.entries.some((e) => e.key === key))
  const existing = holders.flatMap((s) => s.entries.filter((e) => e.key === key))
  let changed = false
  const n = Math.min(existing.length, values.length)
  for (let i = 0; i < n; i++) changed = rewriteEntry(doc, existing[i]!, values[i]!) || changed
  // Remove surplus occurrences, last first so line numbers stay valid while removing.
  for (const e of existing.slice(n).reverse()) {
    for (const s of holders) s.entries = s.entries.filter((x) => x !== e)
    doc.lines.splice(e.line - 1, 1)
    changed = true
  }
  if (existing.length > n) renumber(doc)
  if (values.length > n) {
    const section = holders.at(-1) ?? findOrAddSection(doc, name)
    const cr = doc.eol === '\r\n' ? '\r' : ''
    // Next to the key's last kept occurrence, so a repeated key stays one block.
    let at = n > 0 ? existing[n - 1]!.line : insertionIndex(section)
    for (const v of values.slice(n)) {
      const prefix = entryPrefix(doc, section, key, op)
      const raw = `${prefix}${escapeValue(v)}${cr}`
      const entry: Entry = { key, op, value: v, line: at + 1 }
      doc.lines.splice(at, 0, {
        raw,
        parsed: { kind: 'entry', entry, valueStart: prefix.length, valueEnd: raw.length - cr.length },
      })
      section.entries.push(entry)
      at++
    }
    renumber(doc)
    section.entries.sort((a, b) => a.line - b.line)
    changed = true
  }
  return changed
}

/**
 * The values of `key` that section `name` ends up with through its template chain, as Asterisk
 * builds it: each template's (recursively) in the order listed, then the section's own. Sections of
 * the same name across the given documents are merged in order (that is what `(+)` and includes
 * do). The effective single value is the last element.
 */
export function resolveValues(docs: ConfDoc[], name: string, key: string): string[] {
  return [...templateResolver(docs)(name, key)]
}

/**
 * resolveValues for many lookups in the same documents: the sections are indexed by name once,
 * so resolving every section of a 10,000-endpoint file stays linear. Index the documents as they
 * are now; an edit afterwards needs a new resolver.
 */
export function templateResolver(docs: ConfDoc[]): (name: string, key: string) => readonly string[] {
  const byName = new Map<string, Section[]>()
  for (const s of docs.flatMap(sections)) {
    const list = byName.get(s.name)
    if (list) list.push(s)
    else byName.set(s.name, [s])
  }
  // A template is inherited by many sections (1,000 endpoints share three or four): resolve each
  // (name, key) once; the lists are shared, hence readonly.
  const done = new Map<string, Map<string, string[]>>()
  const walk = (n: string, key: string, seen: string[]): string[] => {
    if (seen.includes(n)) throw new Error(`template cycle: ${[...seen, n].join(' -> ')}`)
    let byKey = done.get(n)
    let out = byKey?.get(key)
    if (out) return out
    out = []
    const own = byName.get(n) ?? []
    for (const s of own) for (const t of s.templates) out.push(...walk(t, key, [...seen, n]))
    for (const s of own) for (const e of s.entries) if (e.key === key) out.push(e.value)
    if (!byKey) done.set(n, (byKey = new Map()))
    byKey.set(key, out)
    return out
  }
  return (name, key) => walk(name, key, [])
}
