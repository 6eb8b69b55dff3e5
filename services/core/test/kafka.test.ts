import t from 'tap'
import pino from 'pino'
import {
  consumerProperties,
  createKafkaClient,
  ensureTopics,
  loadConfig,
  commonConfig,
  pageEventMessage,
  decodePageEvent,
  producerProperties,
} from '@pagestream/core'
import { TEST_BROKERS, deleteTopics, uniqueName, waitFor, withAdmin } from '@pagestream/test-kit'

const config = loadConfig(commonConfig('core-test', 0), { KAFKA_BROKERS: TEST_BROKERS })
const log = pino({ level: 'warn' })

t.test('ensureTopics creates topics with the given partitions and configs, and tolerates existing ones', async (t) => {
  const plain = uniqueName('core-plain')
  const compacted = uniqueName('core-changelog')
  t.teardown(() => deleteTopics([plain, compacted]))
  const admin = createKafkaClient(config, log).admin()
  await admin.connect()
  t.teardown(() => admin.disconnect())
  const specs = [{ topic: plain }, { topic: compacted, config: { 'cleanup.policy': 'compact' } }]
  await ensureTopics(admin, specs, { partitions: 3, replication: 1 })
  await ensureTopics(admin, specs, { partitions: 3, replication: 1 })
  // a new topic's metadata reaches every broker listener a moment after createTopics returns
  const metadata = await waitFor(
    'the new topics in the metadata', () => withAdmin((a) => a.fetchTopicMetadata({ topics: [plain, compacted] }))
  )
  t.same(metadata.map((m) => [m.name, m.partitions.length]).sort(), [[compacted, 3], [plain, 3]].sort())
})

t.test('a PageEvent makes the round trip producer -> broker -> consumer', async (t) => {
  const topic = uniqueName('core-roundtrip')
  const admin = createKafkaClient(config, log).admin()
  await admin.connect()
  await ensureTopics(admin, [{ topic }], { partitions: 2, replication: 1 })
  await admin.disconnect()
  t.teardown(() => deleteTopics([topic]))

  const kafka = createKafkaClient(config, log)
  const producer = kafka.producer(producerProperties())
  await producer.connect()
  const event = { name: 'blog', user: 'U1', date: '2024-01-02T03:04:05.678Z', duration: 42 }
  const [metadata] = await producer.send({ topic, messages: [pageEventMessage(event, 'id-1')] })
  await producer.disconnect()
  t.equal(metadata?.errorCode, 0)

  const received: Array<{ key: string | undefined, event: unknown, id: string | undefined }> = []
  let assigned = 0
  const consumer = kafka.consumer(consumerProperties({
    groupId: uniqueName('core-group'),
    rebalance: (kind, partitions) => { if (kind === 'assign') assigned += partitions.length },
  }))
  await consumer.connect()
  t.teardown(() => consumer.disconnect())
  await consumer.subscribe({ topics: [topic] })
  await consumer.run({
    eachMessage: async ({ message }) => {
      received.push({
        key: message.key?.toString(),
        event: decodePageEvent(message.value),
        id: message.headers?.['event-id']?.toString(),
      })
    },
  })
  await waitFor('the event to come back', () => received.length === 1)
  t.same(received[0], { key: 'blog', event, id: 'id-1' })
  t.equal(assigned, 2, 'the rebalance callback saw both partitions assigned')
})

t.test('the producer never creates topics by itself', async (t) => {
  const missing = uniqueName('core-missing')
  const producer = createKafkaClient(config, log).producer(producerProperties({ deliveryTimeoutMs: 3_000 }))
  await producer.connect()
  t.teardown(() => producer.disconnect())
  await t.rejects(producer.send({ topic: missing, messages: [{ value: 'x' }] }))
  t.notOk((await withAdmin((a) => a.listTopics())).includes(missing), 'the topic still does not exist')
})
