// Row `latency`: from the producer's HTTP 200 to the /analytics event stream showing the event, at
// 200 publishes/s, with the producer and analytics roles started as processes with their defaults.
// One publish in ten goes to a page of its own (a probe): the first SSE frame counting that page
// shows the event. Goals: p50 <= 100 ms, p99 <= 250 ms over every probe of every round.
import http from 'node:http'
import { absoluteCheck, emit, interleave, progress, quantile } from './lib/row.mjs'
import { readEvents } from './lib/sse.mjs'
import { RUN, benchKafka, sleep, startRole } from './lib/procs.mjs'

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3)
const SECONDS = Number(process.env.BENCH_SECONDS ?? 8)
const PER_SECOND = 200
const PROBE_EVERY = 10
const input = `bench-latency-in-${RUN}`
const output = `bench-latency-out-${RUN}`

const admin = benchKafka().admin()
await admin.connect()
const producer = await startRole('producer', { PRODUCER_TOPICS: input, RATE_LIMIT_MAX: '100000000' })
const analytics = await startRole('analytics', {
  ANALYTICS_INPUT_TOPIC: input,
  ANALYTICS_OUTPUT_TOPIC: output,
  ANALYTICS_GROUP_ID: `bench-latency-${RUN}`,
}, { readyTimeoutMs: 120_000 })

/** probe page -> when its 200 came, when the stream first counted it */
const probes = new Map()
const closeStream = readEvents(`${analytics.url}/analytics`, (_id, data, receivedAt) => {
  const counts = JSON.parse(data)
  for (const [page, probe] of probes) {
    if (probe.seenAt === undefined && (counts[page] ?? 0) > 0) probe.seenAt = receivedAt
  }
})
const agent = new http.Agent({ keepAlive: true, maxSockets: 64 })
const publish = (page) => new Promise((resolve) => {
  const request = http.get(`${producer.url}/publish/${input}/${page}`, { agent }, (response) => {
    response.resume()
    response.on('end', () => resolve(response.statusCode === 200 ? performance.now() : undefined))
  })
  request.on('error', () => resolve(undefined))
})

let failed = 0
/** Publishes at PER_SECOND for `seconds` (open loop, on a schedule); returns this round's probe latencies. */
async function round (r, seconds) {
  const started = performance.now()
  const total = PER_SECOND * seconds
  const pending = []
  const mine = []
  for (let n = 0; n < total; n++) {
    const due = started + (n * 1000) / PER_SECOND
    const wait = due - performance.now()
    if (wait > 1) await sleep(wait)
    const page = n % PROBE_EVERY === 0 ? `probe-${r}-${n}` : `page-${n % 7}`
    const probe = page.startsWith('probe') ? { ackedAt: undefined, seenAt: undefined } : undefined
    if (probe !== undefined) { probes.set(page, probe); mine.push(probe) }
    pending.push(publish(page).then((ackedAt) => {
      if (ackedAt === undefined) failed += 1
      if (probe !== undefined) probe.ackedAt = ackedAt
    }))
  }
  await Promise.all(pending)
  const deadline = performance.now() + 10_000
  while (mine.some((p) => p.ackedAt !== undefined && p.seenAt === undefined) && performance.now() < deadline) {
    await sleep(50)
  }
  const unseen = mine.filter((p) => p.seenAt === undefined).length
  if (unseen > 0) throw new Error(`round ${r + 1}: ${unseen} acknowledged probes never showed on /analytics`)
  progress(`latency round ${r + 1}: ${mine.length} probes`)
  return mine.map((p) => Math.max(0, p.seenAt - p.ackedAt))
}

try {
  await round(-1, 2) // warm-up
  const latencies = []
  const { pagestream: perRound } = await interleave(ROUNDS, {
    pagestream: async (r) => {
      const values = await round(r, SECONDS)
      latencies.push(...values)
      return values
    },
  }, 'latency')
  if (failed > 0) throw new Error(`${failed} publishes were not answered 200`)
  const p50 = quantile(latencies, 0.5)
  const p99 = quantile(latencies, 0.99)
  emit({
    id: 'latency',
    title: `latency: HTTP 200 -> /analytics shows it, ${PER_SECOND} publishes/s, ${ROUNDS} rounds of ${SECONDS} s, ` +
      `${latencies.length} probes`,
    measures: [
      { name: 'p50 per round', unit: 'ms', samples: perRound.map((v) => quantile(v, 0.5)) },
      { name: 'p99 per round', unit: 'ms', samples: perRound.map((v) => quantile(v, 0.99)) },
    ],
    checks: [
      absoluteCheck('HTTP 200 -> SSE p50', p50, 'ms', { op: '<=', target: 100 }),
      absoluteCheck('HTTP 200 -> SSE p99', p99, 'ms', { op: '<=', target: 250 }),
    ],
  })
} finally {
  closeStream()
  agent.destroy()
  await producer.stop()
  await analytics.stop()
  const made = new Set(await admin.listTopics())
  const ours = [...made].filter((topic) => topic.includes(RUN) && topic.startsWith('bench-latency'))
  await admin.deleteTopics({ topics: ours }).catch(() => {})
  await admin.disconnect()
}
