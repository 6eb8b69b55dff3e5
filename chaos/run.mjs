// make chaos: the fault drills of issue 13 against a broker of their own, one after the other, then one table.
//   node chaos/run.mjs [drill ...] [--events N]     (no drill named: all of them)
// The runner starts the broker (deploy/local/broker.sh on free ports, or CHAOS_KAFKA_PORT), runs the drills in a
// child process that loads the TypeScript test kit, stops the broker, and exits non-zero when an invariant failed.
import { spawn } from 'node:child_process'
import { existsSync } from 'node:fs'
import { mkdtemp } from 'node:fs/promises'
import { createServer } from 'node:net'
import { cpus, loadavg, tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { brokerFromEnv, localBroker } from './lib/broker.mjs'
import { drillPassed, endProgress, progress, summaryTable, writeResults } from './lib/report.mjs'

const here = dirname(fileURLToPath(import.meta.url))
const root = join(here, '..')
export const DRILLS = ['broker-kill', 'processor-kills', 'poison', 'hostile-http', 'sse-stall']
const DEFAULT_EVENTS = 50_000

function parseArguments (argv) {
  const options = { drills: [], events: DEFAULT_EVENTS, help: false }
  for (let i = 0; i < argv.length; i++) {
    const argument = argv[i]
    if (argument === '--help' || argument === '-h') options.help = true
    else if (argument.startsWith('--events')) {
      const value = argument.includes('=') ? argument.split('=')[1] : argv[++i]
      if (!/^\d+$/.test(value ?? '') || Number(value) < 1000) {
        throw new Error(`--events wants a number >= 1000: ${value}`)
      }
      options.events = Number(value)
    } else if (DRILLS.includes(argument)) options.drills.push(argument)
    else throw new Error(`unknown drill or option ${argument}; drills: ${DRILLS.join(', ')}`)
  }
  if (options.drills.length === 0) options.drills = [...DRILLS]
  return options
}

const usage = `Usage: node chaos/run.mjs [drill ...] [--events N]   (make chaos [DRILL=name] [EVENTS=N])

Drills (all when none is named): ${DRILLS.join(', ')}
  --events N   events of the processor-kills drill (default ${DEFAULT_EVENTS.toLocaleString('en-US')})
Environment: CHAOS_KAFKA_PORT  the drills' broker port (default: a free port)
Writes chaos/results/latest.json; exits 1 when an invariant failed.`

async function freePort () {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

/** The runner: owns the broker, runs the drills in a child that can load the TypeScript kit. */
async function runner (argv) {
  const built = ['producer', 'consumer', 'transformer', 'analytics'].every(
    (role) => existsSync(join(root, 'services', role, 'dist', 'server.js')))
  if (!built) throw new Error('the roles are not built: run `npm run build` (make chaos does)')
  const port = Number(process.env.CHAOS_KAFKA_PORT ?? await freePort())
  const broker = localBroker(root, {
    port, controllerPort: await freePort(), data: await mkdtemp(join(tmpdir(), 'pagestream-chaos-broker-')),
  })
  progress(`starting the drills' broker on ${broker.brokers}`)
  await broker.up()
  let code = 1
  try {
    const self = fileURLToPath(import.meta.url)
    const child = spawn(process.execPath, ['--import', '@tapjs/typescript/import', self, ...argv], {
      cwd: root,
      stdio: 'inherit',
      env: { ...process.env, ...broker.env, PAGESTREAM_TEST_BROKERS: broker.brokers, TS_NODE_TRANSPILE_ONLY: '1' },
    })
    const forward = (signal) => child.kill(signal)
    process.on('SIGINT', forward)
    process.on('SIGTERM', forward)
    code = await new Promise((resolve) => child.once('exit', (exitCode) => resolve(exitCode ?? 1)))
  } finally {
    await broker.down()
  }
  return code
}

/** The drills themselves, in the child. */
async function drills (options) {
  const broker = brokerFromEnv(root)
  const { scope } = await import('./lib/scope.mjs')
  const started = new Date()
  const results = []
  let current
  // interrupted: the roles of the drill under way are stopped before the runner stops the broker
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.once(signal, () => { void (current?.close() ?? Promise.resolve()).finally(() => process.exit(130)) })
  }
  for (const [index, id] of options.drills.entries()) {
    const { drill } = await import(`./drills/${id}.mjs`)
    const t = scope()
    current = t
    const began = performance.now()
    const say = (message) => progress(`[${index + 1}/${options.drills.length} ${id}] ${message}`)
    say(drill.title)
    const result = { id, title: drill.title, seconds: 0, checks: [] }
    try {
      result.checks = await drill.run({ t, broker, root, options, progress: say })
    } catch (err) {
      result.error = err instanceof Error ? err.message : String(err)
    } finally {
      await t.close().catch((err) => { result.cleanup = String(err) })
    }
    result.seconds = (performance.now() - began) / 1000
    result.pass = drillPassed(result)
    endProgress()
    say(`${result.pass ? 'passed' : 'FAILED'} in ${Math.round(result.seconds)} s`)
    endProgress()
    results.push(result)
  }
  const table = summaryTable(results)
  console.log(`\n${table}\n`)
  const run = {
    startedAt: started.toISOString(),
    finishedAt: new Date().toISOString(),
    machine: { cpus: cpus().length, loadAverage: loadavg().map((l) => Number(l.toFixed(2))) },
    options: { drills: options.drills, events: options.events },
    pass: results.every((r) => r.pass),
    drills: results,
    table,
  }
  const path = join(here, 'results', 'latest.json')
  await writeResults(path, run)
  console.log(`results: ${path}${run.pass ? '' : ' (some invariants FAILED)'}`)
  return run.pass ? 0 : 1
}

const argv = process.argv.slice(2)
let options
try {
  options = parseArguments(argv)
} catch (err) {
  console.error(`${err.message}\n\n${usage}`)
  process.exit(2)
}
if (options.help) {
  console.log(usage)
} else if (process.env.CHAOS_BROKER_DATA === undefined) {
  process.exitCode = await runner(argv)
} else {
  process.exitCode = await drills(options)
}
