// Goal: one awaited publish is acknowledged in about a millisecond, not after librdkafka's
// default 5 ms linger (the producer role answers HTTP only after the acknowledgement).
// Measures our producerProperties() against the same producer with the default linger,
// in alternating rounds so both see the same broker and machine load.
import { createKafkaClient, commonConfig, loadConfig, producerProperties } from '@pagestream/core'
import pino from 'pino'
import { emit, interleave, quantile, ratioCheck } from './lib/row.mjs'

const ROUNDS = 10
const SENDS_PER_ROUND = 100
const GOAL = 2 // ours must be at least this many times faster at the median

const config = loadConfig(commonConfig('bench', 0))
const kafka = createKafkaClient(config, pino({ level: 'error' }))
const admin = kafka.admin()
await admin.connect()
const topic = `bench-latency-${Date.now()}`
await admin.createTopics({ topics: [{ topic, numPartitions: 1, replicationFactor: 1 }] })

const variants = {
  pagestream: kafka.producer(producerProperties()),
  anchor: kafka.producer({ ...producerProperties(), 'linger.ms': 5 }),
}
for (const producer of Object.values(variants)) {
  await producer.connect()
  await producer.send({ topic, messages: [{ value: 'warm-up' }] })
}
/** The median of SENDS_PER_ROUND awaited sends, one after the other. */
async function medianSend (producer, round) {
  const times = []
  for (let i = 0; i < SENDS_PER_ROUND; i++) {
    const started = performance.now()
    await producer.send({ topic, messages: [{ key: 'bench', value: `${round}-${i}` }] })
    times.push(performance.now() - started)
  }
  return quantile(times, 0.5)
}
try {
  const samples = await interleave(ROUNDS, {
    pagestream: (round) => medianSend(variants.pagestream, round),
    anchor: (round) => medianSend(variants.anchor, round),
  }, 'producer-latency')
  emit({
    id: 'producer-latency',
    title: `producer-latency: one awaited send, ${ROUNDS} rounds of ${SENDS_PER_ROUND}`,
    measures: [
      { name: 'pagestream producerProperties() (linger.ms=0), p50', unit: 'ms', samples: samples.pagestream },
      { name: 'librdkafka default linger.ms=5, p50', unit: 'ms', samples: samples.anchor },
    ],
    checks: [ratioCheck('p50 send, default linger / ours', samples.pagestream, samples.anchor, {
      goal: GOAL, higherIsBetter: false,
    })],
  })
} finally {
  for (const producer of Object.values(variants)) await producer.disconnect()
  await admin.deleteTopics({ topics: [topic] })
  await admin.disconnect()
}
