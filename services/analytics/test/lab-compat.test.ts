import t from 'tap'
import { jvmConsume } from '@pagestream/test-kit/jvm'
import { TEST_BROKERS, deleteTopics, uniqueName, writeRecords } from '@pagestream/test-kit'
import { analyticsTopics, eventMessage, readWindows, startAnalytics, topicEnv } from './fixture.js'

const T0 = Date.parse('2024-01-01T00:00:00.000Z')

t.test('ANALYTICS_COMPAT_TOPIC: a Java LongDeserializer reads every window update as the lab ' +
  'wrote it, page -> count', async (t) => {
  const topics = await analyticsTopics(t, 'compat', 2)
  const compat = uniqueName('compat-counts')
  t.teardown(() => deleteTopics([compat]))
  // created by the role at start; the windows close on the clock, so no later event adds records
  await startAnalytics(
    t,
    {
      ...topicEnv(topics),
      ANALYTICS_COMPAT_TOPIC: compat,
      WINDOW_SIZE_MS: '1000',
      WINDOW_GRACE_MS: '0',
      WINDOW_IDLE_CLOSE_MS: '500',
    }
  )
  await writeRecords(topics.input, [
    ...[0, 1, 2].map((i) => eventMessage({ page: 'home', user: `U${i}`, at: T0 + i, duration: 1 })),
    ...[0, 1].map((i) => eventMessage({ page: 'blog', user: `U${i}`, at: T0 + i, duration: 1 })),
  ])
  const windows = await readWindows(topics.output, 2, 60_000)
  const expected = windows.map((r) => `${r.page}=${r.count}`).sort()

  const lab = await jvmConsume(TEST_BROKERS, compat, { count: windows.length, valueType: 'long', timeoutMs: 30_000 })
  t.same(lab.map((r) => `${r.key}=${r.value}`).sort(), expected,
    'one record per R4 record, the same page and count, committed with it')
  const newest = new Map<string, string>()
  for (const record of [...lab].sort((a, b) => a.offset - b.offset)) newest.set(record.key ?? '', record.value)
  t.same(Object.fromEntries(newest), { home: '3', blog: '2' }, 'the last record of each page is its final count')
})
