// The Kafka Streams anchor (bench/kafka-streams): built with Maven once per hash of its sources into the cache
// folder, then run as `java -jar` on the bench's broker and data.
import { spawn, spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs'
import { homedir, tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import { createInterface } from 'node:readline'
import { progress } from './row.mjs'
import { root, rssMb } from './processors.mjs'

const sources = join(root, 'bench', 'kafka-streams')

function files (dir) {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    return statSync(path).isDirectory() ? files(path) : [path]
  }).filter((path) => !relative(sources, path).startsWith('target')).sort()
}

/** The anchor's jar, built by `mvn package` the first time these sources are seen. */
export function kafkaStreamsJar () {
  const hash = createHash('sha256')
  for (const path of files(sources)) hash.update(relative(sources, path)).update(readFileSync(path))
  const cache = process.env.PAGESTREAM_CACHE || join(homedir(), '.cache', 'pagestream')
  const build = join(cache, `kafka-streams-anchor-${hash.digest('hex').slice(0, 16)}`)
  const jar = join(build, 'kafka-streams-anchor.jar')
  if (existsSync(jar)) return jar
  progress('building the Kafka Streams anchor with Maven (once, 1-2 min)')
  const result = spawnSync('mvn', ['-q', '-B', '-f', join(sources, 'pom.xml'), `-Danchor.build=${build}`, 'package'], {
    stdio: ['ignore', 'inherit', 'inherit'],
  })
  if (result.status !== 0 || !existsSync(jar)) throw new Error(`mvn package failed (exit ${result.status})`)
  return jar
}

/** Starts the anchor; `readyAt` once Kafka Streams reports RUNNING, peak RSS sampled like startRole's. */
export function startKafkaStreams (jar, { application, input, output, windowMs, graceMs }) {
  const state = mkdtempSync(join(tmpdir(), 'ks-anchor-'))
  const spawnedAt = performance.now()
  const child = spawn('java', ['-Dorg.slf4j.simpleLogger.defaultLogLevel=error', '-jar', jar,
    `bootstrap=${process.env.KAFKA_BROKERS ?? 'localhost:9092'}`,
    `application=${application}`, `input=${input}`, `output=${output}`, `window=${windowMs}`, `grace=${graceMs}`,
    `state=${state}`], { stdio: ['ignore', 'pipe', 'inherit'] })
  const exited = new Promise((resolve) => child.once('exit', resolve))
  const status = { child, spawnedAt, readyAt: undefined, peakRssMb: 0 }
  /** Rejects when the process ends by itself: a round never waits for the output of a dead process. */
  status.failed = exited.then((code) => {
    throw new Error(`Kafka Streams exited (${code}) before its output was exact`)
  })
  status.failed.catch(() => {})
  createInterface({ input: child.stdout }).on('line', (line) => {
    if (line === 'RUNNING' && status.readyAt === undefined) status.readyAt = performance.now()
  })
  const sampler = setInterval(() => { status.peakRssMb = Math.max(status.peakRssMb, rssMb(child.pid)) }, 50)
  status.stop = async () => {
    clearInterval(sampler)
    child.kill('SIGTERM')
    await exited
    rmSync(state, { recursive: true, force: true })
  }
  return status
}
