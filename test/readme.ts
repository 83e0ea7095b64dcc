import t from 'tap'
import { readFileSync } from 'node:fs'
import { withEnvTable } from '../src/config/readme-table.ts'
import { SETTINGS } from '../src/config/settings.ts'

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')

t.test('README documents every environment variable, as the code reads them', async (t) => {
  t.equal(readme, withEnvTable(readme), 'README env table is current (run `npm run readme`)')
  for (const s of SETTINGS) t.match(readme, `| \`${s.name}\``, s.name)
})

t.test('README gives the two set-up commands, and CI runs the test one', async (t) => {
  t.match(readme, '```sh\ndocker compose up -d\n```')
  const test = /## Run the tests\n\n```sh\n(.+)\n```/.exec(readme)?.[1]
  t.ok(test, 'README has a test command')
  const ci = readFileSync(new URL('../.ci/run', import.meta.url), 'utf8')
  t.match(ci, new RegExp(`^${test!.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, 'm'), '.ci/run runs exactly that command')
})
