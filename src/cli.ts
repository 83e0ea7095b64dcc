#!/usr/bin/env -S node --max-semi-space-size=1
// The image's `privatedial`: this file compiled to dist/ (npm run build), so the resident run
// carries no TypeScript stripper (~17 MB). A checkout runs bin/privatedial.js, which loads src/.
// The flag: run is a supervisor that idles between short bursts of work, and V8 grows its young
// generation for throughput (up to 2 x 16 MB) and keeps it once grown. Capped at 2 x 1 MB, run
// holds 24-29 MB of its own memory (RssAnon) after boot with 1,000 endpoints instead of 33-36.
import { main } from './commands.ts'

// Exit rather than wait for the event loop to empty: run may leave a certificate order in flight.
process.exit(await main(process.argv.slice(2), process.env))
