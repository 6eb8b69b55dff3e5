// What the processor rows (analytics, analytics-rss, transformer) share: a backlog of PageEvents with its
// truth per window, a role started as a process with its readiness and RSS timed, and the readers that
// check an output is exact. The broker is KAFKA_BROKERS (make bench starts one; default localhost:9092).
import { spawn } from 'node:child_process'
import { openSync, readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { createKafkaClient, commonConfig, loadConfig, producerProperties } from '@pagestream/core'
import pino from 'pino'

export const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..')
export const config = loadConfig(commonConfig('bench', 0))
export const kafka = createKafkaClient(config, pino({ level: 'error' }))
export const run = Date.now().toString(36)

export const PAGES = Array.from({ length: 20 }, (_, i) => `page-${i}`)
const T0 = Date.parse('2024-01-01T00:00:00.000Z')
/** Event n: pages in turn, 2 ms of event time apart, so 300k events span 10 minutes (120 windows of 5 s). */
export function pageEvent (n) {
  return {
    name: PAGES[(n * 7 + 3) % PAGES.length],
    user: `U${(n * 13) % 50}`,
    date: new Date(T0 + n * 2).toISOString(),
    duration: (n * 37) % 300,
  }
}

/** Count per `page@windowStart` of the backlog's events in tumbling windows of `windowMs`. */
export function windowTruth (events, windowMs) {
  const truth = new Map()
  for (let n = 0; n < events; n++) {
    const event = pageEvent(n)
    const start = Math.floor(Date.parse(event.date) / windowMs) * windowMs
    const key = `${event.name}@${start}`
    truth.set(key, (truth.get(key) ?? 0) + 1)
  }
  return truth
}

/**
 * Writes the backlog keyed by page (as pagestream's producer does: each page stays on one partition, in
 * event-time order, so no event is late and every window's count is known), with an event id header.
 */
export async function produceBacklog (topic, events, partitions = 3) {
  await createTopic(topic, partitions)
  const producer = kafka.producer({ ...producerProperties(), 'linger.ms': 5 })
  await producer.connect()
  for (let i = 0; i < events; i += 2000) {
    await producer.send({
      topic,
      messages: Array.from({ length: Math.min(2000, events - i) }, (_, j) => {
        const event = pageEvent(i + j)
        return { key: event.name, value: JSON.stringify(event), headers: { 'event-id': `e${i + j}` } }
      }),
    })
  }
  await producer.disconnect()
}

export async function createTopic (topic, partitions = 3) {
  const admin = kafka.admin()
  await admin.connect()
  await admin.createTopics({ topics: [{ topic, numPartitions: partitions, replicationFactor: 1 }] })
  await admin.disconnect()
}

export async function deleteTopics (predicate) {
  const admin = kafka.admin()
  await admin.connect()
  const topics = (await admin.listTopics()).filter(predicate)
  if (topics.length > 0) await admin.deleteTopics({ topics }).catch(() => {})
  await admin.disconnect()
}

export function freePort () {
  return new Promise((resolve) => {
    const probe = createServer()
    probe.listen(0, '127.0.0.1', () => { const { port } = probe.address(); probe.close(() => resolve(port)) })
  })
}

/** Resident set size of a process in MB (Linux), 0 once it is gone. */
export function rssMb (pid) {
  try {
    const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return match === null ? 0 : Number(match[1]) / 1024
  } catch {
    return 0
  }
}

/**
 * A pagestream role as a process on its own port: `readyAt` once /health/ready answers 200, `peakRssMb`
 * sampled every 50 ms until stop(). Times are performance.now() of this process.
 */
export async function startRole (role, env) {
  const port = await freePort()
  const url = `http://127.0.0.1:${port}`
  const logDir = process.env.BENCH_LOG_DIR
  const spawnedAt = performance.now()
  const child = spawn(process.execPath, [join(root, 'services', role, 'dist', 'server.js')], {
    env: { ...process.env, HTTP_PORT: String(port), HTTP_HOST: '127.0.0.1', ...env },
    // BENCH_LOG_DIR: keep each role's log there, to see why a round failed
    stdio: ['ignore', logDir ? openSync(join(logDir, `${role}-${port}.log`), 'w') : 'ignore', 'inherit'],
  })
  const exited = new Promise((resolve) => child.once('exit', resolve))
  const state = { child, url, spawnedAt, readyAt: undefined, peakRssMb: 0 }
  let stopping = false
  /** Rejects when the role ends by itself: a round never waits for the output of a dead process. */
  state.failed = exited.then((code) => {
    if (!stopping) throw new Error(`${role} exited (${code}) before it was done`)
  })
  state.failed.catch(() => {})
  const sampler = setInterval(() => { state.peakRssMb = Math.max(state.peakRssMb, rssMb(child.pid)) }, 50)
  const readiness = (async () => {
    while (state.readyAt === undefined && child.exitCode === null) {
      const ok = await fetch(`${url}/health/ready`).then((r) => r.status === 200, () => false)
      if (ok) state.readyAt = performance.now()
      else await new Promise((resolve) => setTimeout(resolve, 20))
    }
  })()
  state.metric = async (pattern) => {
    const text = await fetch(`${url}/metrics`).then((response) => response.text(), () => '')
    return Number(pattern.exec(text)?.[1] ?? 0)
  }
  state.stop = async () => {
    stopping = true
    clearInterval(sampler)
    child.kill('SIGTERM')
    await exited
    await readiness
  }
  return state
}

/**
 * Reads `topic` (read_committed) from the beginning and keeps the newest count per window that
 * `decode(message)` names ({ key, count } or undefined); resolves once every window of `truth` holds its
 * count, rejects when a count goes past its truth (counted twice) or at the deadline.
 */
export async function watchWindowCounts (topic, truth, decode, deadlineMs = 240_000) {
  const consumer = kafka.consumer({
    'group.id': `bench-watch-${run}-${topic}`,
    'enable.auto.commit': false,
    'auto.offset.reset': 'earliest',
    'isolation.level': 'read_committed',
    'fetch.wait.max.ms': 10,
  })
  await consumer.connect()
  await consumer.subscribe({ topics: [topic] })
  const latest = new Map()
  let exact = 0
  let failure
  let settle
  const done = new Promise((resolve, reject) => { settle = { resolve, reject } })
  const timer = setTimeout(() => {
    const wrong = [...truth].filter(([key, count]) => latest.get(key) !== count).slice(0, 5)
      .map(([key, count]) => `${key} ${latest.get(key) ?? 'missing'} (truth ${count})`)
    settle.reject(new Error(`${topic}: ${exact} of ${truth.size} windows exact after ${deadlineMs / 1000} s; ` +
      `e.g. ${wrong.join(', ')}`))
  }, deadlineMs)
  await consumer.run({
    eachBatch: async ({ batch }) => {
      for (const message of batch.messages) {
        const window = decode(message)
        if (window === undefined) continue
        const want = truth.get(window.key)
        if (want === undefined || window.count > want) {
          failure ??= new Error(`${topic}: window ${window.key} counted ${window.count}, truth ${want ?? 0}`)
          settle.reject(failure)
          return
        }
        const before = latest.get(window.key)
        latest.set(window.key, window.count)
        if (before !== want && window.count === want) exact++
        if (before === want && window.count !== want) exact--
      }
      if (exact === truth.size) settle.resolve(performance.now())
    },
  })
  try {
    return await done
  } finally {
    clearTimeout(timer)
    await consumer.disconnect()
  }
}

export const median = (values) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]

/** An R4 window record as watchWindowCounts wants it: its page-window key and count. */
export function r4Window (message) {
  const window = JSON.parse(message.value.toString())
  return { key: `${window.page}@${Date.parse(window.windowStart)}`, count: window.count }
}

/**
 * Starts the analytics role on `input` under a fresh group, waits until its R4 output holds every window of
 * `truth` at its count, stops it and deletes the group's topics. Stream time moves with input only
 * (WINDOW_IDLE_CLOSE_MS=0), as in Kafka Streams: a backlog of old events must not have its windows closed on
 * the wall clock when its partition stalls for a few seconds on a loaded machine. Returns the stopped role and
 * when the output was complete.
 */
export async function drainAnalytics (input, group, truth, env = {}) {
  const output = `${group}-out`
  await createTopic(output)
  const watching = watchWindowCounts(output, truth, r4Window)
  const role = await startRole('analytics', {
    ANALYTICS_INPUT_TOPIC: input,
    ANALYTICS_OUTPUT_TOPIC: output,
    ANALYTICS_GROUP_ID: group,
    ANALYTICS_INSTANCE_ID: 'bench',
    WINDOW_IDLE_CLOSE_MS: '0',
    ...env,
  })
  try {
    const doneAt = await Promise.race([watching, role.failed])
    return { role, doneAt }
  } finally {
    await role.stop()
    await deleteTopics((topic) => topic.startsWith(group))
  }
}
