// What the drills read back from Kafka: topic sizes and a live reader that follows a topic as it grows.
import ckjs from '@confluentinc/kafka-javascript'
import { testKafka, uniqueName, withAdmin } from '@pagestream/test-kit'

/** The records a topic holds, summed over its partitions (high watermarks; 0 for a topic that does not exist). */
export async function recordCount (topic) {
  return withAdmin(async (admin) => {
    if (!(await admin.listTopics()).includes(topic)) return 0
    const offsets = await admin.fetchTopicOffsets(topic)
    return offsets.reduce((sum, p) => sum + Number(p.high) - Number(p.low), 0)
  })
}

/**
 * Follows a topic from its beginning with a fresh group (read_committed), handing every record to `onRecord`,
 * until `stop()`. Large topics are read once, as they grow, instead of re-read on every check.
 */
export async function follow (topic, onRecord) {
  const consumer = testKafka().consumer({
    'group.id': uniqueName('chaos-reader'),
    'auto.offset.reset': 'earliest',
    'enable.auto.commit': false,
    'isolation.level': 'read_committed',
    'fetch.wait.max.ms': 100,
    'js.consumer.max.batch.size': -1,
  })
  await consumer.connect()
  await consumer.subscribe({ topics: [topic] })
  let last = Date.now()
  await consumer.run({
    eachBatch: async ({ batch }) => {
      for (const message of batch.messages) {
        const headers = {}
        for (const [name, value] of Object.entries(message.headers ?? {})) headers[name] = String(value)
        onRecord({ key: message.key?.toString() ?? null, value: message.value?.toString() ?? null, headers })
      }
      last = Date.now()
    },
  })
  return {
    /** Milliseconds since the last record arrived. */
    quietFor: () => Date.now() - last,
    stop: () => consumer.disconnect(),
  }
}

export const { IsolationLevel } = ckjs.KafkaJS
