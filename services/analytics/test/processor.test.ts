import t from 'tap'
import { readTopic, startRole, waitFor, writeRecords } from '@pagestream/test-kit'
import {
  analyticsTopics, eventMessage, finalTable, readWindows, startAnalytics, topicEnv, type PageEventSpec,
} from './fixture.js'

// A window-aligned origin far in the past, so wall-clock time plays no part: only event time does.
const T0 = Date.parse('2024-01-01T00:00:00.000Z')
const at = (offsetMs: number) => T0 + offsetMs

t.test('tumbling windows: exact finals with out-of-order, late and malformed input', async (t) => {
  const topics = await analyticsTopics(t, 'tumbling')
  // only event time closes windows here: none closes on the wall clock once the partition is idle
  const fastify = await startAnalytics(
    t,
    {
      ...topicEnv(topics),
      WINDOW_SIZE_MS: '5000',
      WINDOW_GRACE_MS: '2000',
      LONG_VIEW_THRESHOLD_MS: '100',
      WINDOW_IDLE_CLOSE_MS: '0',
    }
  )
  const events: PageEventSpec[] = [
    { page: 'home', user: 'U1', at: at(1_000), duration: 50 },
    { page: 'home', user: 'U2', at: at(2_000), duration: 150 },
    { page: 'blog', user: 'U1', at: at(3_000), duration: 200 },
    // dated centuries ahead: a dead letter, or stream time would close every window at once
    { page: 'home', user: 'U9', at: Date.parse('2999-01-01T00:00:00Z'), duration: 1 },
    { page: 'home', user: 'U1', at: at(6_000), duration: 120 },
    // out of order, but within the grace period of [0 s, 5 s): counted
    { page: 'home', user: 'U3', at: at(4_500), duration: 10 },
    // stream time 8 s closes [0 s, 5 s) (end 5 s + grace 2 s <= 8 s)
    { page: 'blog', user: 'U2', at: at(8_000), duration: 300 },
    // late: its window has closed, so it goes to the late topic and into no window
    { page: 'home', user: 'U4', at: at(4_900), duration: 70 },
    { page: 'blog', user: 'U3', at: at(9_999), duration: 100 },
    { page: 'home', user: 'U1', at: at(12_000), duration: 500 },
  ]
  const messages = events.map(eventMessage)
  messages.push({ key: 'home', value: 'not json' })
  messages.push(eventMessage({ page: 'home', user: 'U5', at: at(30_000), duration: 1 }))
  await writeRecords(topics.input, messages)

  const records = await readWindows(topics.output, 5)
  t.same(finalTable(records), [
    { page: 'blog', start: at(0), end: at(5_000), count: 1, durationSum: 200, distinctUsers: 1, longViews: 1 },
    { page: 'blog', start: at(5_000), end: at(10_000), count: 2, durationSum: 400, distinctUsers: 2, longViews: 1 },
    { page: 'home', start: at(0), end: at(5_000), count: 3, durationSum: 210, distinctUsers: 3, longViews: 1 },
    { page: 'home', start: at(5_000), end: at(10_000), count: 1, durationSum: 120, distinctUsers: 1, longViews: 1 },
    { page: 'home', start: at(10_000), end: at(15_000), count: 1, durationSum: 500, distinctUsers: 1, longViews: 1 },
  ], 'one final record per closed window, with exact values')

  const open = records.filter((r) => r.page === 'home' && r.start === at(30_000))
  t.ok(open.length >= 1 && open.every((r) => !r.final && r.count === 1),
    'the open window is sent as updates, never as final')
  for (const record of records.filter((r) => !r.final)) {
    const final = records.find((r) => r.final && r.page === record.page && r.start === record.start)
    if (final !== undefined) {
      t.ok(record.count <= final.count,
      `update of ${record.page}@${record.start - T0} never exceeds its final`)
    }
  }

  const late = await readTopic(topics.late, { count: 1 })
  t.equal(late.length, 1, 'exactly one late event')
  t.same(
    JSON.parse(late[0]?.value ?? '{}'),
    { name: 'home', user: 'U4', date: new Date(at(4_900)).toISOString(), duration: 70 }
  )
  t.equal(late[0]?.headers['late-windows-missed'], '1')
  t.equal(late[0]?.headers['late-stream-time'], new Date(at(8_000)).toISOString())

  // the repartition stage dead-letters what is not a PageEvent, the windows what is dated too far ahead
  const notJson = (record: { value: string | null }) => (record.value === 'not json' ? 1 : 0)
  const dead = (await readTopic(topics.dlq, { count: 2 })).sort((a, b) => notJson(a) - notJson(b))
  t.equal(dead.length, 2, 'exactly two dead letters')
  t.match(dead[0]?.headers['dlq-error'], /^date: must not be more than 60000 ms ahead of the clock/)
  t.equal(dead[1]?.value, 'not json')
  t.match(dead[1]?.headers['dlq-error'], /not JSON/)

  const metrics = (await fastify.inject('/metrics')).body
  t.match(metrics, /analytics_late_events_total\{role="analytics"\} 1\n/)
  t.match(metrics, /analytics_dead_letters_total\{role="analytics"\} 1\n/)
  t.match(metrics, /analytics_repartition_records_dead_lettered_total\{role="analytics"\} 1\n/)
})

t.test('an event dated ahead of the clock (within EVENT_MAX_FUTURE_MS) ' +
  'does not make on-time events late', async (t) => {
  const topics = await analyticsTopics(t, 'future')
  // a grace of 3 s: on a busy machine the on-time event may take a second to be processed, and is still on time
  await startAnalytics(t, { ...topicEnv(topics), WINDOW_SIZE_MS: '1000', WINDOW_GRACE_MS: '3000' })
  const now = Date.now()
  await writeRecords(topics.input, [
    eventMessage({ page: 'f', user: 'ahead', at: now + 50_000, duration: 1 }),
    eventMessage({ page: 'f', user: 'on-time', at: now, duration: 2 }),
  ])
  // the clock moves past the on-time window's end plus grace: an event dated then closes it
  const start = Math.floor(now / 1000) * 1000
  await waitFor('the clock to pass the window end plus grace', () => Date.now() > start + 4_100, 10_000, 20)
  await writeRecords(topics.input, [eventMessage({ page: 'f', user: 'next', at: Date.now(), duration: 3 })])
  const finals = finalTable(await readWindows(topics.output, 1))
  t.same(finals, [{ page: 'f', start, end: start + 1000, count: 1, durationSum: 2, distinctUsers: 1, longViews: 0 }],
    'the on-time event counted in its window')
  t.same(await readTopic(topics.late, { count: 0, timeoutMs: 2_000, settleMs: 500 }), [],
    'and nothing went to the late topic')
})

t.test('hopping windows: every event in each of its windows, ' +
  'partly late events counted where still open', async (t) => {
  const topics = await analyticsTopics(t, 'hopping')
  await startAnalytics(
    t, { ...topicEnv(topics), WINDOW_SIZE_MS: '10000', WINDOW_ADVANCE_MS: '5000', WINDOW_GRACE_MS: '1000' }
  )
  const events: PageEventSpec[] = [
    { page: 'p', user: 'U1', at: at(2_000), duration: 10 },
    { page: 'p', user: 'U2', at: at(7_000), duration: 20 },
    // stream time 12 s closes [-5 s, 5 s) and [0 s, 10 s)
    { page: 'p', user: 'U1', at: at(12_000), duration: 200 },
    // [0 s, 10 s) has closed, [5 s, 15 s) is open: counted there, and sent to the late topic
    { page: 'p', user: 'U3', at: at(9_500), duration: 30 },
    // stream time 26 s closes [5 s, 15 s) and [10 s, 20 s)
    { page: 'p', user: 'U1', at: at(26_000), duration: 5 },
  ]
  await writeRecords(topics.input, events.map(eventMessage))
  const records = await readWindows(topics.output, 4)
  t.same(finalTable(records), [
    { page: 'p', start: at(-5_000), end: at(5_000), count: 1, durationSum: 10, distinctUsers: 1, longViews: 0 },
    { page: 'p', start: at(0), end: at(10_000), count: 2, durationSum: 30, distinctUsers: 2, longViews: 0 },
    { page: 'p', start: at(5_000), end: at(15_000), count: 3, durationSum: 250, distinctUsers: 3, longViews: 1 },
    { page: 'p', start: at(10_000), end: at(20_000), count: 1, durationSum: 200, distinctUsers: 1, longViews: 1 },
  ])
  const late = await readTopic(topics.late, { count: 1 })
  t.equal(late.length, 1)
  t.equal(late[0]?.headers['late-windows-missed'], '1')
})

t.test('SIGTERM: what was processed is committed before the process exits', async (t) => {
  const topics = await analyticsTopics(t, 'sigterm')
  // a long commit interval: only the shutdown commits what follows
  const role = await startRole(
    t, 'analytics', { ...topicEnv(topics), COMMIT_INTERVAL_MS: '600000', ANALYTICS_INSTANCE_ID: 'sigterm' }
  )
  await writeRecords(topics.input, Array.from({
    length: 8,
  }, (_, i) => eventMessage({ page: 'bye', user: `U${i}`, at: at(100 + i), duration: 10 })))
  await waitFor('the 8 events counted',
    async () => /^analytics_events_total\{[^}]*\} 8$/m.test(await (await fetch(`${role.url}/metrics`)).text()))
  const stopping = Date.now()
  t.equal(await role.stop('SIGTERM'), 0, 'exit code 0')
  t.ok(Date.now() - stopping < 10_000, `stopped in ${Date.now() - stopping} ms`)
  const records = await readWindows(topics.output, 0)
  t.same(records.map((r) => [r.page, r.count, r.final]), [['bye', 8, false]],
    'the open window was committed on the way out')
})

t.test('a slice that does not fit the windows: the service refuses to start and names the variable', async (t) => {
  const role = await startRole(
    t,
    'analytics',
    { WINDOW_SIZE_MS: '1500', WINDOW_SLICE_MS: '1000', ANALYTICS_INPUT_TOPIC: 'never-created' },
    { waitReady: false }
  )
  t.equal(await role.exited, 2, 'exit code 2, as every configuration error')
  t.match(
    role.output.join('\n'),
    /WINDOW_SLICE_MS: must divide WINDOW_SIZE_MS \(1500\) and the window advance \(1500\), e\.g\. 750 \(got 1000\)/
  )
})
