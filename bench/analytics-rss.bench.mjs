// Row `analytics-rss`: the analytics role's peak resident memory while it drains a backlog to exact windowed
// counts, with its throughput held: the role as configured (bounded librdkafka prefetch) against the same
// role with librdkafka's default prefetch (ANALYTICS_PREFETCH_RECORDS=100000, ANALYTICS_PREFETCH_KB=65536:
// queued.min.messages and queued.max.messages.kbytes), alternating rounds. RSS is sampled every 50 ms
// from /proc; events/s from ready to exact output.
import { absoluteCheck, emit, interleave, ratioCheck } from './lib/row.mjs'
import {
  deleteTopics, drainAnalytics, produceBacklog, run, windowTruth,
} from './lib/processors.mjs'

const EVENTS = Number(process.env.BENCH_ANALYTICS_EVENTS ?? 300_000)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 2)
const WINDOW_MS = 5_000
const GOAL_MB = 250

const input = `bench-rss-in-${run}`
await produceBacklog(input, EVENTS)
const truth = windowTruth(EVENTS, WINDOW_MS)

const results = { bounded: { rate: [], rss: [] }, unbounded: { rate: [], rss: [] } }

function drain (name, env) {
  return async (round) => {
    const group = `bench-rss-${run}-${round}-${name}`
    const { role, doneAt } = await drainAnalytics(input, group, truth, env)
    results[name].rate.push(EVENTS / ((doneAt - (role.readyAt ?? role.spawnedAt)) / 1000))
    results[name].rss.push(role.peakRssMb)
    return role.peakRssMb
  }
}

await interleave(ROUNDS, {
  bounded: drain('bounded', {}),
  unbounded: drain('unbounded', {
    ANALYTICS_PREFETCH_RECORDS: '100000', ANALYTICS_PREFETCH_KB: '65536',
  }),
}, 'analytics-rss')
await deleteTopics((topic) => topic.startsWith(input))

const { bounded, unbounded } = results
emit({
  id: 'analytics-rss',
  title: `analytics RSS draining a ${EVENTS.toLocaleString('en-US')} events backlog ` +
    '(3 partitions, re-keyed, exactly once)',
  measures: [
    { name: 'peak RSS, as configured', unit: 'MB', samples: bounded.rss },
    { name: 'peak RSS, librdkafka default prefetch', unit: 'MB', samples: unbounded.rss },
    { name: 'processing, as configured', unit: 'events/s', samples: bounded.rate },
    { name: 'processing, librdkafka default prefetch', unit: 'events/s', samples: unbounded.rate },
  ],
  checks: [
    absoluteCheck('peak RSS, as configured (highest round)', Math.max(...bounded.rss), 'MB',
      { op: '<=', target: GOAL_MB }),
    ratioCheck('throughput held: as configured / default prefetch', bounded.rate, unbounded.rate, { goal: 0.9 }),
  ],
})
