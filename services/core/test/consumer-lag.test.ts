import t from 'tap'
import pino from 'pino'
import { Registry } from 'prom-client'
import {
  CONSUMER_LAG_METRIC, ConsumerLag, commonConfig, consumerProperties, createKafkaClient, loadConfig, partitionLag,
} from '@pagestream/core'
import { TEST_BROKERS, createTopics, parseMetrics, uniqueName, waitFor, writeRecords } from '@pagestream/test-kit'

const config = loadConfig(commonConfig('core-test', 0), { KAFKA_BROKERS: TEST_BROKERS })
const log = pino({ level: 'warn' })

t.test('partitionLag counts from the committed offset, or from the log start when nothing is committed', async (t) => {
  t.equal(partitionLag('3', '10', '0'), 7)
  t.equal(partitionLag('-1', '10', '4'), 6, 'no commit yet: every retained record is behind')
  t.equal(partitionLag(null, '5', '0'), 5, 'null is no commit too')
  t.equal(partitionLag('-1001', '5', '0'), 5, "librdkafka's invalid offset is no commit too")
  t.equal(partitionLag('12', '10', '0'), 0, 'never negative (a commit seen before its end offset)')
})

t.test('the gauge shows N records behind per partition, then 0 once the group has committed them', async (t) => {
  const topic = uniqueName('lag')
  const group = uniqueName('lag-group')
  await createTopics(t, [topic], 2)
  const registry = new Registry()
  const kafka = createKafkaClient(config, log)
  const admin = kafka.admin()
  await admin.connect()
  const lag = new ConsumerLag(kafka, admin, registry, [{ group, topic }], log, 100)
  const consumer = kafka.consumer(consumerProperties({ groupId: group }))
  // whoever opened it closes it, the users first: an admin closed under a request crashes librdkafka
  t.teardown(async () => {
    await consumer.disconnect()
    await lag.stop()
    await admin.disconnect()
  })
  await lag.start()
  const samples = async () => parseMetrics(await registry.metrics())
    .filter((s) => s.name === CONSUMER_LAG_METRIC && s.labels.group === group && s.labels.topic === topic)
  const lagOf = async (expected: number) => {
    const found = await samples()
    return found.length === 2 && found.reduce((sum, s) => sum + s.value, 0) === expected && found
  }

  await waitFor('lag 0 of an empty topic on both partitions', () => lagOf(0))
  const records = Array.from({ length: 7 }, (_, i) => ({ key: `page-${i}`, value: `v${i}` }))
  await writeRecords(topic, records)
  const behind = await waitFor('lag 7 while nobody consumes', () => lagOf(7))
  t.same(behind.map((s) => s.labels.partition).sort(), ['0', '1'], 'one series per partition')

  await consumer.connect()
  await consumer.subscribe({ topics: [topic] })
  await consumer.run({
    eachBatch: async ({ batch }) => {
      const next = (BigInt(batch.lastOffset()) + 1n).toString()
      await consumer.commitOffsets([{ topic, partition: batch.partition, offset: next }])
    },
  })
  await waitFor('lag 0 after the group committed everything', () => lagOf(0))
  t.pass('caught up')
})
