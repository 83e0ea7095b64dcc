#!/usr/bin/env node
// Plain JavaScript on purpose: Node strips TypeScript types at every start, which costs more than
// a short command itself (HEALTHCHECK runs `health` every 30 s, MiniVM runs minivm-send per
// message). The compile cache keeps that work between runs; it must be on before any .ts loads.
import { enableCompileCache } from 'node:module'

enableCompileCache()
const { main } = await import('../src/commands.ts')
// Exit rather than wait for the event loop to empty: run may leave a certificate order in flight.
process.exit(await main(process.argv.slice(2), process.env))
