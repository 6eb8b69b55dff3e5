// Row `transformer`: a backlog of PageEvents through the transformer role (R1 -> R3, exactly once: input offsets
// and output in one transaction) against two pipes without transactions on the same broker and data:
// the same transform written with the same client (a consumer and an idempotent producer, offsets committed
// after the sends), and `kcat -C | kcat -P`. Alternating rounds, a fresh group and output each.
// Records/s: the role from ready (group joined) to its last transaction committed (its metric, committed
// only); the client pipe from its first batch to its last acknowledgement; kcat from spawn to exit.
// Every round's output is checked: the role's R3 read back read_committed (each event id once, durations
// doubled), the pipes' record counts.
import { spawn } from 'node:child_process'
import { join } from 'node:path'
import { consumerProperties, producerProperties } from '@pagestream/core'
import { emit, interleave, ratioCheck } from './lib/row.mjs'
import { createTopic, deleteTopics, kafka, pageEvent, produceBacklog, root, run, startRole } from './lib/processors.mjs'

const { transformBatch } = await import(join(root, 'services', 'transformer', 'dist', 'transform.js'))

const EVENTS = Number(process.env.BENCH_TRANSFORMER_EVENTS ?? 200_000)
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3)
const brokers = process.env.KAFKA_BROKERS ?? 'localhost:9092'

const input = `bench-transformer-in-${run}`
await produceBacklog(input, EVENTS)
let durationSum = 0
for (let n = 0; n < EVENTS; n++) durationSum += pageEvent(n).duration

async function recordsIn (topic) {
  const admin = kafka.admin()
  await admin.connect()
  const offsets = await admin.fetchTopicOffsets(topic)
  await admin.disconnect()
  return offsets.reduce((sum, p) => sum + Number(p.high) - Number(p.low), 0)
}

/** Reads R3 back read_committed: every event id once, each duration doubled, names upper-cased. */
async function checkTransformed (topic) {
  const consumer = kafka.consumer(consumerProperties({ groupId: `bench-check-${run}-${topic}` }))
  await consumer.connect()
  await consumer.subscribe({ topics: [topic] })
  const ids = new Set()
  let sum = 0
  let problem
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${topic}: ${ids.size} of ${EVENTS} read back in 120 s`)), 120_000)
    void consumer.run({
      eachBatch: async ({ batch }) => {
        for (const message of batch.messages) {
          const event = JSON.parse(message.value.toString())
          const id = message.headers['event-id'].toString()
          if (ids.has(id)) problem ??= `event ${id} twice`
          if (event.name !== event.name.toUpperCase()) problem ??= `event ${id} not transformed`
          ids.add(id)
          sum += event.duration
        }
        if (ids.size >= EVENTS) { clearTimeout(timer); resolve() }
      },
    })
  }).finally(() => consumer.disconnect())
  if (sum !== 2 * durationSum) problem ??= `durations sum to ${sum}, not twice the input's ${durationSum}`
  if (problem !== undefined) throw new Error(`${topic}: ${problem}`)
}

const rates = { pagestream: [], pipe: [], kcat: [] }

async function transformerRole (round) {
  const group = `bench-transformer-${run}-${round}`
  const output = `${group}-out`
  await createTopic(output)
  const role = await startRole('transformer', {
    TRANSFORMER_INPUT_TOPIC: input,
    TRANSFORMER_OUTPUT_TOPIC: output,
    TRANSFORMER_GROUP_ID: group,
    TRANSFORMER_INSTANCE_ID: 'bench',
  })
  let doneAt
  try {
    const deadline = Date.now() + 240_000
    while (Date.now() < deadline && doneAt === undefined) {
      await new Promise((resolve) => setTimeout(resolve, 50))
      // /status, not /metrics: rendering every metric 20 times a second would cost the role more
      const status = await fetch(`${role.url}/status`).then((response) => response.json(), () => undefined)
      if ((status?.counts?.transformed ?? 0) >= EVENTS) doneAt = performance.now()
    }
  } finally {
    await role.stop()
  }
  if (doneAt === undefined) throw new Error(`transformer: not done in 240 s (round ${round})`)
  await checkTransformed(output)
  await deleteTopics((topic) => topic.startsWith(group))
  rates.pagestream.push(EVENTS / ((doneAt - (role.readyAt ?? role.spawnedAt)) / 1000))
  return rates.pagestream.at(-1)
}

async function clientPipe (round) {
  const group = `bench-pipe-${run}-${round}`
  const output = `${group}-out`
  await createTopic(output)
  const producer = kafka.producer(producerProperties({ lingerMs: 5 }))
  const consumer = kafka.consumer({
    ...consumerProperties({ groupId: group, readCommitted: false }), 'js.consumer.max.batch.size': 2000,
  })
  await Promise.all([producer.connect(), consumer.connect()])
  await consumer.subscribe({ topics: [input] })
  let startedAt
  let acknowledged = 0
  const inFlight = new Set()
  // sends overlap (at most 8 batches unacknowledged); each batch's offset is committed once it is acknowledged
  const doneAt = await new Promise((resolve, reject) => {
    void consumer.run({
      eachBatch: async ({ batch }) => {
        startedAt ??= performance.now()
        const work = transformBatch(batch.topic, batch.partition, batch.messages)
        const sent = producer.send({ topic: output, messages: work.outputs }).then(() => {
          inFlight.delete(sent)
          acknowledged += work.outputs.length
          consumer.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset: work.nextOffset }])
            .catch(() => {})
          if (acknowledged >= EVENTS) resolve(performance.now())
        }, reject)
        inFlight.add(sent)
        if (inFlight.size >= 8) await Promise.race(inFlight)
      },
    })
  })
  await Promise.all([producer.disconnect(), consumer.disconnect()])
  const written = await recordsIn(output)
  await deleteTopics((topic) => topic.startsWith(group))
  if (written !== EVENTS) throw new Error(`client pipe: ${written} of ${EVENTS} records written`)
  rates.pipe.push(EVENTS / ((doneAt - startedAt) / 1000))
  return rates.pipe.at(-1)
}

async function kcatPipe (round) {
  const output = `bench-kcat-${run}-${round}-out`
  await createTopic(output)
  const startedAt = performance.now()
  const pipe = spawn('bash', ['-o', 'pipefail', '-c',
    `kcat -C -b ${brokers} -t ${input} -o beginning -e -q | kcat -P -b ${brokers} -t ${output}`],
  { stdio: ['ignore', 'ignore', 'inherit'] })
  const code = await new Promise((resolve) => pipe.once('exit', resolve))
  const doneAt = performance.now()
  const written = await recordsIn(output)
  await deleteTopics((topic) => topic === output)
  if (code !== 0 || written !== EVENTS) throw new Error(`kcat pipe: exit ${code}, ${written} of ${EVENTS} records`)
  rates.kcat.push(EVENTS / ((doneAt - startedAt) / 1000))
  return rates.kcat.at(-1)
}

await interleave(ROUNDS, { pagestream: transformerRole, 'client pipe': clientPipe, kcat: kcatPipe }, 'transformer')
await deleteTopics((topic) => topic.startsWith(input))

emit({
  id: 'transformer',
  title: `transformer: ${EVENTS.toLocaleString('en-US')} events backlog R1 -> R3 (3 partitions), exactly once ` +
    'against pipes without transactions',
  measures: [
    { name: 'pagestream transformer, exactly once (from ready)', unit: 'records/s', samples: rates.pagestream },
    { name: 'same client, consume -> transform -> produce', unit: 'records/s', samples: rates.pipe },
    { name: 'kcat -C | kcat -P', unit: 'records/s', samples: rates.kcat },
  ],
  checks: [
    ratioCheck('pagestream / same-client pipe', rates.pagestream, rates.pipe, { goal: 0.5 }),
    ratioCheck('pagestream / kcat pipe', rates.pagestream, rates.kcat, { goal: 0.25 }),
  ],
  notes: ['R3 is read back every round: each event id once, durations doubled, names upper-cased'],
})
