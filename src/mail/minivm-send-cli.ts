#!/usr/bin/env node
// The image's `minivm-send`, compiled to dist/ like cli.ts; a checkout runs bin/minivm-send.js.
import { main } from './minivm-send.ts'

await main()
