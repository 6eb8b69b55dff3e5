import t from 'tap'
import { startRole, waitFor, writeRecords } from '@pagestream/test-kit'
import {
  STEADY_T0, analyticsTopics, eventMessage, finalTable, oneSecondWindows, processorReadiness, readWindows,
  steadyEvents, windowCounts,
} from './fixture.js'

const T0 = STEADY_T0
const PAGES = ['a', 'b', 'c', 'd', 'e', 'f']

const events = (from: number, count: number) => steadyEvents(from, count, PAGES)

t.test('two replicas given the same ANALYTICS_INSTANCE_ID: ' +
  'the older steps down instead of both fencing each other forever', async (t) => {
  const topics = await analyticsTopics(t, 'twins', 2)
  const env = oneSecondWindows(topics, {
    COMMIT_INTERVAL_MS: '100', ANALYTICS_INSTANCE_ID: 'twin', ANALYTICS_STATIC_MEMBERSHIP: 'false',
  })
  const older = await startRole(t, 'analytics', env)
  await writeRecords(topics.input, events(0, 300).map(eventMessage))
  const committed = /analytics_transactions_total\{[^}]*result="committed"[^}]*\} [1-9]/
  await waitFor('the older replica to commit',
    async () => committed.test(await (await fetch(`${older.url}/metrics`)).text()), 30_000)

  // same transactional.id: its start fences the older replica's producer
  const newer = await startRole(t, 'analytics', env)
  await writeRecords(topics.input, events(300, 300).map(eventMessage))
  await waitFor('the older replica to step down', async () => {
    const { status, detail } = await processorReadiness(older.url)
    return status === 503 && /fenced by another instance .*stepped down/.test(detail)
  }, 30_000)
  await waitFor(
    'the newer replica to own both partitions',
    async () => (await processorReadiness(newer.url)).detail === 'owns partitions [0,1]',
    45_000
  )
  t.pass('the newer replica took every partition over')

  await writeRecords(
    topics.input,
    [...events(600, 300), ...PAGES.map((page) => ({ page, user: 'flush', at: T0 + 60_000, duration: 0 }))].map(
      eventMessage
    )
  )
  const expected = windowCounts(events(0, 900), 1000)
  const finals = finalTable(await readWindows(topics.output, expected.size, 60_000))
  t.same(Object.fromEntries(finals.map((row) => [`${row.page}@${row.start}`, row.count])), Object.fromEntries(expected),
    'every window final once, each event counted once')
  const older503 = await processorReadiness(older.url)
  t.equal(older503.status, 503, 'the older replica stays not ready until restarted')
})
