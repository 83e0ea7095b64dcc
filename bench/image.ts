// The image built from the working tree, by numbers: its size, how soon Docker calls a fresh
// start healthy, how soon a saved pjsip_endpoint.conf is live, and the container's memory at idle
// with two registered phones. Run through the repository's compose file as test/image.ts does.
import { readFileSync, writeFileSync } from 'node:fs'
import { rm } from 'node:fs/promises'
import { dirname } from 'node:path'
import { parseConf, printConf, setValue } from '../src/config/conf.ts'
import { freePort, USERS } from '../test/helpers/asterisk.ts'
import { docker, findDocker, followLogs, imageProject } from '../test/helpers/docker.ts'
import { finalResponses, findSipp, runSipp, SCENARIOS } from '../test/helpers/sipp.ts'

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!

const engine = findDocker()
const sipp = findSipp()
if (typeof engine === 'string') console.log(`image: skipped (${engine})`)
else if (typeof sipp === 'string') console.log(`image: skipped (${sipp})`)
else {
  const project = await imageProject(`pdbench${process.pid}`)
  const { compose, dir, gateway, sipPort } = project
  try {
    await compose(['build', 'pbx'])
    const size = await docker(['image', 'ls', 'privatedial-test:latest', '--format', '{{.Size}}'])
    console.log(`image size: ${size} (docker image ls; engine ${engine.version}; goal < 350 MB)`)

    await compose(['up', '-d', '--wait', '--wait-timeout', '120'])
    const container = await project.container()
    const logs = followLogs(container)
    const state = JSON.parse(await docker(['inspect', '-f', '{{json .State}}', container])) as {
      StartedAt: string
      Health: { Log: { End: string; ExitCode: number }[] }
    }
    const healthy = Date.parse(state.Health.Log.find((l) => l.ExitCode === 0)!.End) - Date.parse(state.StartedAt)
    const ready = /PrivateDial ready (\d+) ms/.exec(await logs.waitFor(/PrivateDial ready \d+ ms/))![1]
    console.log(`first start: ready after ${ready} ms, Docker says healthy after ${healthy} ms`)

    const endpoints = parseConf(readFileSync(`${SCENARIOS}/pjsip_endpoint.conf`, 'utf8'), 'pjsip_endpoint.conf')
    setValue(endpoints, 'itsp:test', 'remote_hosts', `${gateway}:${await freePort()}`)
    const live: number[] = []
    for (let i = 0; i < 5; i++) {
      const from = logs.lines.length
      const saved = Date.now()
      writeFileSync(`${dir}/pjsip_endpoint.conf`, `${printConf(endpoints)}; save ${i}\n`)
      const line = await logs.waitFor(/reloaded after a change to .*pjsip_endpoint\.conf/, 30_000, from)
      live.push(Date.parse(line.split(' ')[0]!) - saved)
    }
    console.log(`pjsip_endpoint.conf saved on the host -> reloaded: ${median(live)} ms (median of 5; goal < 1000 ms)`)

    for (const user of ['alice', 'bob'] as const) {
      const r = await runSipp(sipp.bin, {
        scenario: 'uac-register.xml',
        target: `127.0.0.1:${sipPort}`,
        port: await freePort(),
        auth: { user, password: USERS[user].password },
      })
      if (finalResponses(r, 'REGISTER').at(-1) !== 200) throw new Error(`${user} did not register\n${r.summary}`)
    }
    const memory = await docker(['stats', '--no-stream', '--format', '{{.MemUsage}}', container])
    const rss = (await docker(['top', container, '-eo', 'pid,rss,comm']))
      .split('\n')
      .slice(1)
      .map((l) => l.trim().split(/\s+/))
      .map(([, kb, comm]) => `${comm} ${Math.round(Number(kb) / 1024)} MB`)
    console.log(
      `container memory at idle, two phones registered: ${memory.split(' / ')[0]} (docker stats); RSS: ${rss.join(', ')}`,
    )
    logs.stop()
  } finally {
    await compose(['down', '--volumes', '--timeout', '1'], { reject: false })
    await rm(dirname(dir), { recursive: true, force: true })
  }
}
