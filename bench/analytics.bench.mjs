// Row `analytics`: a backlog of page events to exact windowed counts, pagestream's analytics role (re-keying
// stage + window processor, exactly once) against a Kafka Streams windowed count doing the same groupBy by page
// (bench/kafka-streams, exactly_once_v2), same broker and data, alternating rounds. Each side starts on the
// backlog with a fresh group and output; the clock stops when a read_committed reader of its output sees
// every window at its true count (a count past the truth fails the round). Events/s end to end (from spawn,
// start-up included) and processing only (from ready: pagestream's /health/ready, Kafka Streams' RUNNING).
import { emit, interleave, ratioCheck } from './lib/row.mjs'
import { kafkaStreamsJar, startKafkaStreams } from './lib/kafka-streams.mjs'
import {
  createTopic, deleteTopics, drainAnalytics, produceBacklog, run, watchWindowCounts, windowTruth,
} from './lib/processors.mjs'

const EVENTS = Number(process.env.BENCH_ANALYTICS_EVENTS ?? 300_000)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3)
const WINDOW_MS = 5_000
const GRACE_MS = 2_000

const jar = kafkaStreamsJar()
const input = `bench-analytics-in-${run}`
await produceBacklog(input, EVENTS)
const truth = windowTruth(EVENTS, WINDOW_MS)

const rates = {
  pagestream: { e2e: [], processing: [], rss: [] },
  'kafka streams': { e2e: [], processing: [], rss: [] },
}
function record (name, side, doneAt) {
  rates[name].e2e.push(EVENTS / ((doneAt - side.spawnedAt) / 1000))
  rates[name].processing.push(EVENTS / ((doneAt - (side.readyAt ?? side.spawnedAt)) / 1000))
  rates[name].rss.push(side.peakRssMb)
}

await interleave(ROUNDS, {
  pagestream: async (round) => {
    const group = `bench-analytics-${run}-${round}`
    const { role, doneAt } = await drainAnalytics(input, group, truth, {
      WINDOW_SIZE_MS: String(WINDOW_MS), WINDOW_GRACE_MS: String(GRACE_MS),
    })
    record('pagestream', role, doneAt)
    return rates.pagestream.processing.at(-1)
  },
  'kafka streams': async (round) => {
    const application = `bench-ks-${run}-${round}`
    const output = `${application}-out`
    await createTopic(output)
    const watching = watchWindowCounts(output, truth, (message) => {
      return { key: message.key.toString(), count: Number(message.value.toString()) }
    })
    const streams = startKafkaStreams(jar, { application, input, output, windowMs: WINDOW_MS, graceMs: GRACE_MS })
    try {
      record('kafka streams', streams, await Promise.race([watching, streams.failed]))
    } finally {
      await streams.stop()
      await deleteTopics((topic) => topic.startsWith(application))
    }
    return rates['kafka streams'].processing.at(-1)
  },
}, 'analytics')
await deleteTopics((topic) => topic.startsWith(input))

const ours = rates.pagestream
const anchor = rates['kafka streams']
emit({
  id: 'analytics',
  title: `analytics: ${EVENTS.toLocaleString('en-US')} events backlog to exact windowed counts ` +
    `(${truth.size} windows of ${WINDOW_MS / 1000} s, 3 partitions, groupBy page, exactly once)`,
  measures: [
    { name: 'pagestream end to end (from spawn)', unit: 'events/s', samples: ours.e2e },
    { name: 'pagestream processing (from ready)', unit: 'events/s', samples: ours.processing },
    { name: 'Kafka Streams end to end (from spawn)', unit: 'events/s', samples: anchor.e2e },
    { name: 'Kafka Streams processing (from RUNNING)', unit: 'events/s', samples: anchor.processing },
    { name: 'pagestream peak RSS', unit: 'MB', samples: ours.rss },
    { name: 'Kafka Streams peak RSS', unit: 'MB', samples: anchor.rss },
  ],
  checks: [
    ratioCheck('end to end, pagestream / Kafka Streams', ours.e2e, anchor.e2e, { goal: 1.2 }),
    ratioCheck('processing, pagestream / Kafka Streams', ours.processing, anchor.processing, { goal: 1.0 }),
  ],
  notes: ['both sides re-key by page through a repartition topic; their outputs are read back and compared ' +
    'window by window with the backlog\'s truth every round'],
})
