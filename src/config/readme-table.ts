// README.md's environment table is generated from the settings table, between two markers.
import { envTable } from './settings.ts'

const START = /<!-- env-table:[^\n]*-->\n/
const END = '<!-- env-table:end -->'

export function withEnvTable(readme: string): string {
  const start = START.exec(readme)
  const end = readme.indexOf(END)
  if (!start || end < start.index)
    throw new Error('README.md has no `<!-- env-table: ... -->` ... `<!-- env-table:end -->` markers')
  return readme.slice(0, start.index + start[0].length) + envTable() + '\n' + readme.slice(end)
}
