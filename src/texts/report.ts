// `privatedial texts`: what waits in the text store, per user, read from disk (the service need
// not run). Bodies only when asked, and escaped: a text can't write to the terminal.
import type { TextState } from './store.ts'

export interface UserSummary {
  user: string
  texts: number
  /** Texts no phone of the user has yet. */
  waiting: number
  oldest: number
  bytes: number
}

export function summarize(states: TextState[]): UserSummary[] {
  const by = new Map<string, UserSummary>()
  for (const { text, deliveredTo } of states) {
    const s = by.get(text.user) ?? { user: text.user, texts: 0, waiting: 0, oldest: text.time, bytes: 0 }
    s.texts++
    if (!deliveredTo.size) s.waiting++
    s.oldest = Math.min(s.oldest, text.time)
    s.bytes += text.body.length
    by.set(text.user, s)
  }
  return [...by.values()].sort((a, b) => a.user.localeCompare(b.user))
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)))
  return rows
    .map((r) =>
      r
        .map((c, i) => c.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n')
}

export function formatReport(dir: string, states: TextState[], opts: { bodies?: boolean } = {}): string {
  if (!states.length) return `no texts in ${dir}\n`
  const rows = summarize(states).map((s) => [
    s.user,
    String(s.texts),
    String(s.waiting),
    new Date(s.oldest).toISOString(),
    String(s.bytes),
  ])
  let out = `${table([['user', 'texts', 'waiting', 'oldest', 'bytes'], ...rows])}\n`
  out += `(${dir}; waiting: no phone of the user has it yet; the others wait for more of the user's phones)\n`
  if (!opts.bodies) return out
  const texts = [...states].sort((a, b) => a.text.id.localeCompare(b.text.id))
  out += `\n${table([
    ['user', 'sent', 'from', 'phones', 'body'],
    ...texts.map(({ text, deliveredTo }) => [
      text.user,
      new Date(text.time).toISOString(),
      JSON.stringify(text.from),
      String(deliveredTo.size),
      JSON.stringify(text.body.toString('utf8')),
    ]),
  ])}\n`
  return out
}
