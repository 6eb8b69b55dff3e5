// Goal: one awaited publish is acknowledged in about a millisecond, not after librdkafka's
// default 5 ms linger (the producer role answers HTTP only after the acknowledgement).
// Measures our producerProperties() against the same producer with the default linger,
// in alternating rounds so both see the same broker and machine load.
import { createKafkaClient, commonConfig, loadConfig, producerProperties } from '@pagestream/core'
import pino from 'pino'

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
  'pagestream (linger.ms=0)': kafka.producer(producerProperties()),
  'librdkafka default (linger.ms=5)': kafka.producer({ ...producerProperties(), 'linger.ms': 5 }),
}
const samples = Object.fromEntries(Object.keys(variants).map((name) => [name, []]))
for (const producer of Object.values(variants)) {
  await producer.connect()
  await producer.send({ topic, messages: [{ value: 'warm-up' }] })
}
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, producer] of Object.entries(variants)) {
    for (let i = 0; i < SENDS_PER_ROUND; i++) {
      const started = performance.now()
      await producer.send({ topic, messages: [{ key: 'bench', value: `${round}-${i}` }] })
      samples[name].push(performance.now() - started)
    }
  }
}
const quantile = (values, q) => [...values].sort((a, b) => a - b)[Math.floor(q * (values.length - 1))]
const medians = {}
for (const [name, values] of Object.entries(samples)) {
  medians[name] = quantile(values, 0.5)
  const ms = (q) => `${quantile(values, q).toFixed(2)} ms`
  console.log(`${name.padEnd(34)} p50 ${ms(0.5)}  p95 ${ms(0.95)}  p99 ${ms(0.99)}  (${values.length} sends)`)
}
const [ours, theirs] = Object.values(medians)
const ratio = theirs / ours
console.log(`median ratio default/ours: ${ratio.toFixed(1)}x (goal >= ${GOAL}x) ${ratio >= GOAL ? 'PASS' : 'FAIL'}`)
for (const producer of Object.values(variants)) await producer.disconnect()
await admin.deleteTopics({ topics: [topic] })
await admin.disconnect()
process.exitCode = ratio >= GOAL ? 0 : 1
