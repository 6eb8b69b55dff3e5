import { randomBytes } from 'node:crypto'
import ckjs from '@confluentinc/kafka-javascript'
import type { KafkaJS } from '@confluentinc/kafka-javascript'
import type { Teardown } from './teardown.js'

export const TEST_BROKERS = process.env.PAGESTREAM_TEST_BROKERS ??
  `localhost:${process.env.PAGESTREAM_TEST_KAFKA_PORT ?? '39092'}`

const quiet: KafkaJS.Logger = {
  info: () => {},
  debug: () => {},
  warn: () => {},
  error: (message) => {
    // connection noise: tests stop brokers and close clients while they connect
    if (/Connection refused|ECONNREFUSED|Disconnected|all broker/i.test(message)) return
    process.stderr.write(`kafka: ${message}\n`)
  },
  namespace: () => quiet,
  setLogLevel: () => {},
}

export function testKafka (brokers = TEST_BROKERS): KafkaJS.Kafka {
  return new ckjs.KafkaJS.Kafka({ kafkaJS: { brokers: brokers.split(','), logger: quiet } })
}

/** A topic name no other test uses. */
export function uniqueName (prefix: string): string {
  return `${prefix}-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`
}

export async function withAdmin<T> (use: (admin: KafkaJS.Admin) => Promise<T>, brokers = TEST_BROKERS): Promise<T> {
  const admin = testKafka(brokers).admin()
  await admin.connect()
  try {
    return await use(admin)
  } finally {
    await admin.disconnect()
  }
}

export async function createTopics (t: Teardown, topics: string[], partitions = 1): Promise<void> {
  const specs = topics.map((topic) => ({ topic, numPartitions: partitions, replicationFactor: 1 }))
  await withAdmin((admin) => admin.createTopics({ topics: specs }))
  t.teardown(() => deleteTopics(topics))
}

export async function deleteTopics (topics: string[]): Promise<void> {
  await withAdmin(async (admin) => {
    const existing = new Set(await admin.listTopics())
    const ours = topics.filter((topic) => existing.has(topic))
    if (ours.length > 0) await admin.deleteTopics({ topics: ours, timeout: 10_000 })
  }).catch(() => {})
}

export async function topicExists (topic: string): Promise<boolean> {
  return withAdmin(async (admin) => (await admin.listTopics()).includes(topic))
}

export interface ReadRecord {
  topic: string
  partition: number
  offset: string
  key: string | null
  value: string | null
  headers: Record<string, string>
}

/**
 * Reads a topic from the beginning with a fresh group until `count` records arrived, then for
 * `settleMs` more without news, so that an extra (duplicate) record would be seen too.
 */
export async function readTopic (
  topic: string, options: { count: number, timeoutMs?: number, settleMs?: number, readCommitted?: boolean }
): Promise<ReadRecord[]> {
  const { count, timeoutMs = 30_000, settleMs = 1_000, readCommitted = true } = options
  const consumer = testKafka().consumer({
    'group.id': uniqueName('test-reader'),
    'auto.offset.reset': 'earliest',
    'enable.auto.commit': false,
    'isolation.level': readCommitted ? 'read_committed' : 'read_uncommitted',
    'fetch.wait.max.ms': 50,
    'js.consumer.max.batch.size': -1,
    // the quiet period starts once partitions are assigned, so "nothing arrived" means nothing is there
    rebalance_cb: (err: { code: number }) => {
      if (err.code === ckjs.KafkaJS.ErrorCodes.ERR__ASSIGN_PARTITIONS) lastArrival = Math.min(lastArrival, Date.now())
    },
  })
  const records: ReadRecord[] = []
  let lastArrival = Number.POSITIVE_INFINITY
  await consumer.connect()
  try {
    await consumer.subscribe({ topics: [topic] })
    await consumer.run({
      eachMessage: async ({ topic: from, partition, message }) => {
        const headers: Record<string, string> = {}
        for (const [name, value] of Object.entries(message.headers ?? {})) headers[name] = String(value)
        const key = message.key?.toString() ?? null
        const value = message.value?.toString() ?? null
        records.push({ topic: from, partition, offset: message.offset, key, value, headers })
        lastArrival = Date.now()
      },
    })
    const deadline = Date.now() + timeoutMs
    while (Date.now() < deadline) {
      if (records.length >= count && Date.now() - lastArrival >= settleMs) return records
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    if (lastArrival === Number.POSITIVE_INFINITY) {
      throw new Error(`readTopic(${topic}): never assigned a partition within ${timeoutMs} ms`)
    }
    return records
  } finally {
    await consumer.disconnect()
  }
}

/** Writes records with an independent producer (not the code under test). */
export async function writeRecords (
  topic: string, messages: Array<{ key?: string, value: string | null, headers?: Record<string, string> }>
): Promise<void> {
  const producer = testKafka().producer({ 'linger.ms': 5, 'enable.idempotence': true })
  await producer.connect()
  try {
    for (let i = 0; i < messages.length; i += 1000) {
      const batch = messages.slice(i, i + 1000).map((m) => ({ key: m.key ?? null, value: m.value, headers: m.headers }))
      await producer.send({ topic, messages: batch })
    }
  } finally {
    await producer.disconnect()
  }
}
