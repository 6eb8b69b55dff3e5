// Topics of one drill and the events written to them, made from an index so a million need not be held in memory.
import { createTopics, deleteTopics, testKafka, uniqueName } from '@pagestream/test-kit'

/** Fresh R1/R2 stand-ins (3 partitions, as in production) and names for what the roles create from them. */
export async function drillTopics (t, prefix) {
  const r1 = uniqueName(`${prefix}-r1`)
  const r2 = uniqueName(`${prefix}-r2`)
  const group = uniqueName(`${prefix}-group`)
  const names = {
    r1,
    r2,
    r3: uniqueName(`${prefix}-r3`),
    r4: uniqueName(`${prefix}-r4`),
    group,
    r1DeadLetters: `${r1}.dlq`,
    r2DeadLetters: `${r2}.dlq`,
    late: `${r2}.late`,
  }
  await createTopics(t, [r1, r2], 3)
  t.teardown(() => deleteTopics([
    names.r3, names.r4, names.r1DeadLetters, names.r2DeadLetters, names.late,
    `${group}-analytics-windows-changelog`, `${group}-analytics-repartition`,
  ]))
  return names
}

/** The roles' settings for these topics; analytics on 1 s tumbling windows that close by event time alone. */
export function roleEnv (topics) {
  return {
    transformer: {
      TRANSFORMER_INPUT_TOPIC: topics.r1,
      TRANSFORMER_OUTPUT_TOPIC: topics.r3,
      TRANSFORMER_GROUP_ID: `${topics.group}-transformer`,
      TRANSFORMER_INSTANCE_ID: 'chaos',
      LOG_LEVEL: 'warn',
    },
    analytics: {
      ANALYTICS_INPUT_TOPIC: topics.r2,
      ANALYTICS_OUTPUT_TOPIC: topics.r4,
      ANALYTICS_GROUP_ID: `${topics.group}-analytics`,
      ANALYTICS_INSTANCE_ID: 'chaos',
      WINDOW_SIZE_MS: '1000',
      // events of one page arrive through three input partitions: a little grace absorbs their skew
      WINDOW_GRACE_MS: '5000',
      // the truth is counted by event time alone: no window may close on the clock
      WINDOW_IDLE_CLOSE_MS: '0',
      LOG_LEVEL: 'warn',
    },
    consumer: {
      CONSUMER_TOPIC: topics.r1,
      CONSUMER_GROUP_ID: `${topics.group}-consumer`,
      LOG_LEVEL: 'warn',
    },
  }
}

export const T0 = Date.parse('2024-01-01T00:00:00.000Z')
export const PAGES = Array.from({ length: 20 }, (_, i) => `page-${i}`)
export const WINDOW_MS = 1_000

/** The i-th event of a drill: event time 2 ms apart, so 500 per 1 s window spread over 20 pages. */
export function nthEvent (i) {
  return {
    id: `ev-${i}`,
    name: PAGES[(i * 7 + 3) % PAGES.length],
    user: `U${(i * 13) % 50}`,
    at: T0 + i * 2,
    duration: (i * 37) % 300,
  }
}

export function pageEventRecord ({ id, name, user, at, duration }) {
  return {
    key: name,
    value: JSON.stringify({ name, user, date: new Date(at).toISOString(), duration }),
    headers: { 'content-type': 'application/json', 'event-id': id },
  }
}

/** Writes records `from` index `count` long to every topic, with a producer that is not the code under test. */
export async function writeEvents (topics, count, record, onProgress = () => {}) {
  const producer = testKafka().producer({ 'linger.ms': 5, 'enable.idempotence': true })
  await producer.connect()
  try {
    for (let i = 0; i < count; i += 1000) {
      const size = Math.min(1000, count - i)
      // a batch per topic: the client rewrites the headers of the messages it is given
      await Promise.all(topics.map((topic) => producer.send({
        topic, messages: Array.from({ length: size }, (_, j) => record(i + j)),
      })))
      onProgress(i + size)
    }
  } finally {
    await producer.disconnect()
  }
}
