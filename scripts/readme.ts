// `npm run readme`: regenerate README.md's environment table from src/config/settings.ts.
import { readFileSync, writeFileSync } from 'node:fs'
import { withEnvTable } from '../src/config/readme-table.ts'

const path = new URL('../README.md', import.meta.url)
writeFileSync(path, withEnvTable(readFileSync(path, 'utf8')))
