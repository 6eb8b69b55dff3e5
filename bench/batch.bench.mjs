// Row `batch`: POST /events/R2 with 100 events per request over 50 connections (the producer role answers
// after every event's ack) against the same Kafka client producing directly, 50 sends of 100 in flight.
// Goal: the producer keeps at least 0.8 of the client's events per second (median of rounds).
import { pageEventMessage, producerProperties } from '@pagestream/core'
import { emit, interleave, ratioCheck } from './lib/row.mjs'
import { hammer } from './lib/load.mjs'
import { RUN, benchKafka, startRole } from './lib/procs.mjs'

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5)
const SECONDS = Number(process.env.BENCH_SECONDS ?? 5)
const CONNECTIONS = 50
const PER_REQUEST = 100
const GOAL = 0.8
const topic = `bench-batch-${RUN}`
const PAGES = Array.from({ length: 20 }, (_, i) => `page-${i}`)
const events = Array.from({ length: PER_REQUEST }, (_, i) => ({
  name: PAGES[i % PAGES.length], user: `U${i % 7}`, date: new Date().toISOString(), duration: i * 37,
}))
const body = Buffer.from(JSON.stringify(events))

const kafka = benchKafka()
const admin = kafka.admin()
await admin.connect()
const producerRole = await startRole('producer', { PRODUCER_TOPICS: topic, RATE_LIMIT_MAX: '100000000' })
const client = kafka.producer(producerProperties())
await client.connect()

/** The anchor: CONNECTIONS loops, each awaiting one send of PER_REQUEST records before the next. */
async function direct (durationMs) {
  let sent = 0
  const started = performance.now()
  const end = started + durationMs
  const loop = async () => {
    while (performance.now() < end) {
      await client.send({ topic, messages: events.map((event) => pageEventMessage(event)) })
      sent += PER_REQUEST
    }
  }
  await Promise.all(Array.from({ length: CONNECTIONS }, loop))
  return sent / ((performance.now() - started) / 1000)
}

async function overHttp (durationMs) {
  const result = await hammer({
    url: producerRole.url, method: 'POST', path: () => `/events/${topic}`, body, connections: CONNECTIONS, durationMs,
  })
  if (result.failed > 0) throw new Error(`${result.failed} requests failed ${JSON.stringify(result.statuses)}`)
  latencies.push(result.p50)
  return result.perSecond * PER_REQUEST
}

const latencies = []
try {
  await overHttp(1_500)
  await direct(1_500)
  latencies.length = 0
  const samples = await interleave(ROUNDS, {
    pagestream: () => overHttp(SECONDS * 1000),
    anchor: () => direct(SECONDS * 1000),
  }, 'batch')
  emit({
    id: 'batch',
    title: `batch: POST /events/R2, ${PER_REQUEST} events per request, ${CONNECTIONS} connections, ` +
      `${ROUNDS} rounds of ${SECONDS} s`,
    measures: [
      { name: 'pagestream producer, events/s', unit: 'events/s', samples: samples.pagestream },
      { name: `same client directly, batches of ${PER_REQUEST}, events/s`, unit: 'events/s', samples: samples.anchor },
      { name: 'pagestream p50 per request', unit: 'ms', samples: latencies },
    ],
    checks: [ratioCheck('events/s, producer / client directly', samples.pagestream, samples.anchor, { goal: GOAL })],
  })
} finally {
  await producerRole.stop()
  await client.disconnect()
  await admin.deleteTopics({ topics: [topic] }).catch(() => {})
  await admin.disconnect()
}
