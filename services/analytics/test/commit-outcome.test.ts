import t from 'tap'
import Fastify from 'fastify'
import { Registry } from 'prom-client'
import type { KafkaClient } from '@pagestream/core'
import { ensureChangelog } from '../src/changelog.js'
import { WindowProcessor } from '../src/processor.js'
import { windowSpec } from '../src/window-geometry.js'
import { TEST_BROKERS, type Teardown, faultyClient, waitFor, withAdmin, writeRecords } from '@pagestream/test-kit'
import { type AnalyticsTopics, analyticsTopics, eventMessage, finalTable, readWindows } from './fixture.js'

const T0 = Date.parse('2024-01-01T00:00:00.000Z')

const SETTINGS = {
  WINDOW_SIZE_MS: 1_000,
  WINDOW_ADVANCE_MS: 0,
  WINDOW_GRACE_MS: 0,
  WINDOW_SLICE_MS: 1_000,
  ROLLING_COUNT_SPAN_MS: 1_000,
  ROLLING_DURATION_SPAN_MS: 1_000,
}

async function startProcessor (
  t: Teardown, topics: AnalyticsTopics, client: KafkaClient, metrics: Registry, commitIntervalMs = 100
): Promise<WindowProcessor> {
  await withAdmin((admin) => ensureChangelog(admin, topics.input, topics.changelog, 1))
  const processor = new WindowProcessor({
    client,
    connection: { 'bootstrap.servers': TEST_BROKERS },
    log: Fastify({ logger: false }).log,
    metrics,
    topics: {
      input: topics.input,
      output: topics.output,
      changelog: topics.changelog,
      late: topics.late,
      deadLetter: topics.dlq,
    },
    groupId: topics.group,
    instanceId: 'outcome',
    staticMembership: false,
    spec: windowSpec(SETTINGS),
    timeSource: 'date',
    idleCloseMs: 0,
    longViewThresholdMs: 100,
    maxFutureMs: 0,
    commitIntervalMs,
  })
  t.teardown(() => processor.stop())
  await processor.start()
  await waitFor('the processor to own its partition', () => processor.readiness().ok, 30_000, 50)
  return processor
}

t.test('a commit reported failed that did land: the rewind starts at the offsets the group ' +
  'holds, counting nothing twice', async (t) => {
  const topics = await analyticsTopics(t, 'outcome', 1)
  await withAdmin((admin) => ensureChangelog(admin, topics.input, topics.changelog, 1))
  const { client, injected } = faultyClient(t, { commitLandsButFails: 1 })
  const metrics = new Registry()
  await startProcessor(t, topics, client, metrics)

  await writeRecords(topics.input, Array.from({
    length: 6,
  }, (_, i) => eventMessage({ page: 'o', user: `U${i}`, at: T0 + 10 + i, duration: 1 })))
  await waitFor('the injected commit failure', () => injected() === 1, 30_000, 20)
  // the processor rewound after the "failed" commit; now close the window
  await writeRecords(topics.input, [eventMessage({ page: 'o', user: 'close', at: T0 + 5_000, duration: 0 })])
  const finals = finalTable(await readWindows(topics.output, 1))
  t.same(finals, [{ page: 'o', start: T0, end: T0 + 1_000, count: 6, durationSum: 6, distinctUsers: 6, longViews: 0 }],
    'each event counted once')
  t.match(await metrics.metrics(), /analytics_transactions_total\{result="aborted"\} 1\n/,
    'the processor took the commit for failed')
})

t.test('transactions that cannot begin: a new producer each time, not ready after 3 failures in a row, ' +
  'ready again once one commits', async (t) => {
  const topics = await analyticsTopics(t, 'failing', 1)
  const { client, injected, producers } = faultyClient(t, { transactionFails: 3 })
  const metrics = new Registry()
  const processor = await startProcessor(t, topics, client, metrics)
  t.equal(producers(), 1)

  await writeRecords(topics.input, Array.from({
    length: 6,
  }, (_, i) => eventMessage({ page: 'o', user: `U${i}`, at: T0 + 10 + i, duration: 1 })))
  // while a producer is replaced the detail says so; then, before the next try, why it is not ready
  await waitFor('not ready after 3 failed transactions in a row', () => {
    const { ok, detail } = processor.readiness()
    return !ok && /^transactions failing: cannot begin a transaction/.test(detail ?? '')
  }, 30_000, 5)
  t.equal(injected(), 3)
  await waitFor('a transaction to commit', () => processor.readiness().ok, 30_000, 20)
  t.equal(producers(), 4, 'a producer that could not begin a transaction was replaced each time')
  await writeRecords(topics.input, [eventMessage({ page: 'o', user: 'close', at: T0 + 5_000, duration: 0 })])
  const finals = finalTable(await readWindows(topics.output, 1))
  t.same(finals, [{ page: 'o', start: T0, end: T0 + 1_000, count: 6, durationSum: 6, distinctUsers: 6, longViews: 0 }],
    'each event counted once')
})

t.test('stopping: a last commit that fails is aborted, ' +
  'without restoring the state from the changelog on the way out', async (t) => {
  const topics = await analyticsTopics(t, 'stopping', 1)
  let failSends = false
  const { client, injected } = faultyClient(t, { sendBatchFails: () => failSends })
  const metrics = new Registry()
  // only the shutdown commits
  const processor = await startProcessor(t, topics, client, metrics, 600_000)
  await writeRecords(topics.input, Array.from({
    length: 3,
  }, (_, i) => eventMessage({ page: 's', user: `U${i}`, at: T0 + i, duration: 1 })))
  await waitFor(
    'the 3 events counted', async () => /^analytics_events_total 3$/m.test(await metrics.metrics()), 30_000, 20
  )
  const restored = processor.lastRestore
  t.ok(restored !== undefined, 'the assignment restored the partition')
  failSends = true
  await processor.stop()
  t.equal(injected(), 1, 'the last commit failed')
  t.match(await metrics.metrics(), /analytics_transactions_total\{result="aborted"\} 1\n/)
  t.equal(processor.lastRestore, restored, 'and no restore followed it')
})
