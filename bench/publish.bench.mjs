// Row `publish`: GET /publish/R1/x over 50 keep-alive connections, the producer role (every answer
// after the broker's ack) against bare Fastify serving the same route without Kafka.
// Goal: the producer keeps at least half of bare Fastify's requests per second (median of rounds).
import { join } from 'node:path'
import { emit, interleave, quantile, ratioCheck } from './lib/row.mjs'
import { hammer } from './lib/load.mjs'
import { RUN, ROOT, benchKafka, startProcess, startRole } from './lib/procs.mjs'

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5)
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5)
const CONNECTIONS = 50
const GOAL = 0.5
const topic = `bench-publish-${RUN}`

const admin = benchKafka().admin()
await admin.connect()
const producer = await startRole('producer', {
  PRODUCER_TOPICS: topic,
  // one client address sends it all: the per-address limit would answer 429
  RATE_LIMIT_MAX: '100000000',
})
const bare = await startProcess(join(ROOT, 'bench', 'anchors', 'bare-publish.mjs'))
const path = () => `/publish/${topic}/x`
const load = (url, durationMs) => hammer({ url, path, connections: CONNECTIONS, durationMs })

const runs = { pagestream: [], anchor: [] }
try {
  // warm-up: JIT, connections, the producer's first metadata
  await load(producer.url, 1_500)
  await load(bare.url, 1_500)
  const measured = async (name, url) => {
    const result = await load(url, SECONDS * 1000)
    if (result.failed > 0) {
      throw new Error(`${name}: ${result.failed} requests failed ${JSON.stringify(result.statuses)}`)
    }
    runs[name].push(result)
    return result.perSecond
  }
  const samples = await interleave(ROUNDS, {
    pagestream: () => measured('pagestream', producer.url),
    anchor: () => measured('anchor', bare.url),
  }, 'publish')
  const p50 = (name) => runs[name].map((r) => r.p50)
  emit({
    id: 'publish',
    title: `publish: GET /publish/${'R1'}/x, ${CONNECTIONS} connections, ${ROUNDS} rounds of ${SECONDS} s`,
    measures: [
      { name: 'pagestream producer, req/s', unit: 'req/s', samples: samples.pagestream },
      { name: 'bare Fastify, same route, no Kafka, req/s', unit: 'req/s', samples: samples.anchor },
      { name: 'pagestream p50 latency', unit: 'ms', samples: p50('pagestream') },
      { name: 'bare Fastify p50 latency', unit: 'ms', samples: p50('anchor') },
    ],
    checks: [ratioCheck('req/s, producer / bare Fastify', samples.pagestream, samples.anchor, { goal: GOAL })],
    notes: [`producer p99 over rounds ${quantile(runs.pagestream.map((r) => r.p99), 0.5).toFixed(1)} ms`],
  })
} finally {
  await producer.stop()
  await bare.stop()
  await admin.deleteTopics({ topics: [topic] }).catch(() => {})
  await admin.disconnect()
}
