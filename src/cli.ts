#!/usr/bin/env node
// The image's `privatedial`: this file compiled to dist/ (npm run build), so the resident run
// carries no TypeScript stripper (~17 MB). A checkout runs bin/privatedial.js, which loads src/.
import { main } from './commands.ts'

// Exit rather than wait for the event loop to empty: run may leave a certificate order in flight.
process.exit(await main(process.argv.slice(2), process.env))
