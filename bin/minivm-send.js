#!/usr/bin/env node
// Plain JavaScript for the reason given in bin/privatedial.js.
import { enableCompileCache } from 'node:module'

enableCompileCache()
const { main } = await import('../src/mail/minivm-send.ts')
await main()
