import t from 'tap'
import { testKafka, writeRecords } from '@pagestream/test-kit'
import { analyticsTopics, eventMessage, finalTable, readWindows, startAnalytics, topicEnv } from './fixture.js'

const T0 = Date.parse('2024-01-01T00:00:00.000Z')
/** An hour after T0: where the record timestamps of the test put the events. */
const T1 = T0 + 3_600_000

/** Writes records whose Kafka timestamp is set by the test (writeRecords leaves it to the producer). */
async function writeTimestamped (
  topic: string, records: Array<{ key: string, value: string, timestamp: number }>
): Promise<void> {
  const producer = testKafka().producer({ 'enable.idempotence': true })
  await producer.connect()
  try {
    await producer.send({
      topic, messages: records.map((r) => ({ key: r.key, value: r.value, timestamp: String(r.timestamp) })),
    })
  } finally {
    await producer.disconnect()
  }
}

const counts = (rows: Array<{
  page: string, start: number, count: number,
}>) => Object.fromEntries(rows.map((r) => [`${r.page}@${r.start - T0}`, r.count]))

t.test('WINDOW_TIME_SOURCE: windows follow the PageEvent date by default, ' +
  'the record timestamp with "timestamp"', async (t) => {
  // dates 300 ms apart from T0, timestamps 400 ms apart from T1: the two sources cut different windows
  const records = Array.from({ length: 6 }, (_, i) => ({
    ...eventMessage({ page: 'p', user: `U${i}`, at: T0 + i * 300, duration: 10 }),
    timestamp: T1 + i * 400,
  }))
  const byDate = await analyticsTopics(t, 'by-date')
  const byTimestamp = await analyticsTopics(t, 'by-timestamp')
  const settings = { WINDOW_SIZE_MS: '1000', WINDOW_GRACE_MS: '0', WINDOW_IDLE_CLOSE_MS: '500' }
  await startAnalytics(t, { ...topicEnv(byDate), ...settings })
  await startAnalytics(t, { ...topicEnv(byTimestamp), ...settings, WINDOW_TIME_SOURCE: 'timestamp' })
  await writeTimestamped(byDate.input, records)
  await writeTimestamped(byTimestamp.input, records)

  t.same(counts(finalTable(await readWindows(byDate.output, 2))), { 'p@0': 4, 'p@1000': 2 },
    'date: 0, 300, 600, 900 ms | 1200, 1500 ms')
  t.same(counts(finalTable(await readWindows(byTimestamp.output, 3))), {
    'p@3600000': 3, 'p@3601000': 2, 'p@3602000': 1,
  },
  'timestamp: 0, 400, 800 ms | 1200, 1600 ms | 2000 ms after T1')
})

t.test('an idle partition closes its windows on the wall clock: finals without new traffic', async (t) => {
  const topics = await analyticsTopics(t, 'idle', 2)
  await startAnalytics(
    t, { ...topicEnv(topics), WINDOW_SIZE_MS: '1000', WINDOW_GRACE_MS: '500', WINDOW_IDLE_CLOSE_MS: '1000' }
  )
  const now = Date.now()
  const start = Math.floor(now / 1000) * 1000
  // one window of a page dated long ago and one of a live page, then nothing more on either partition
  await writeRecords(topics.input, [
    ...[0, 1].map((i) => eventMessage({ page: 'old', user: `U${i}`, at: T0 + i, duration: 7 })),
    ...[0, 1, 2].map((i) => eventMessage({ page: 'live', user: `U${i}`, at: now, duration: 5 })),
  ])
  const finals = finalTable(await readWindows(topics.output, 2, 60_000))
  t.same(finals.map((r) => [r.page, r.start, r.count, r.durationSum]), [['live', start, 3, 15], ['old', T0, 2, 14]],
    'each window final once, with every event, though no later event came')
})
