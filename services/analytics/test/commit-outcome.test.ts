import t from 'tap'
import Fastify from 'fastify'
import { Registry } from 'prom-client'
import type { KafkaClient, Producer } from '@pagestream/core'
import { ensureChangelog } from '../src/changelog.js'
import { WindowProcessor } from '../src/processor.js'
import { windowSpec } from '../src/windows.js'
import { TEST_BROKERS, testKafka, withAdmin, writeRecords } from '../../../test/helpers/kafka.js'
import { waitFor } from '../../../test/helpers/wait.js'
import { analyticsTopics, eventMessage, finalTable, readWindows } from './fixture.js'

const T0 = Date.parse('2024-01-01T00:00:00.000Z')

/**
 * The client's commit reports a failure although the commit landed: what a commit that timed out
 * on the client, while librdkafka went on and completed it, looks like to the processor.
 */
function clientWhoseFirstCommitLandsButFails (): { client: KafkaClient, injected: () => number } {
  const real = testKafka()
  let injected = 0
  const client = {
    consumer: (config: Parameters<KafkaClient['consumer']>[0]) => real.consumer(config),
    producer: (config: Parameters<KafkaClient['producer']>[0]) => {
      const producer: Producer = real.producer(config)
      const commit = producer.commit.bind(producer)
      producer.commit = async () => {
        await commit()
        if (injected === 0) {
          injected += 1
          throw Object.assign(new Error('commit timed out (injected after the commit landed)'), { retriable: false })
        }
      }
      return producer
    },
  } as unknown as KafkaClient
  return { client, injected: () => injected }
}

t.test('a commit reported failed that did land: the rewind starts at the offsets the group holds, counting nothing twice', async (t) => {
  const topics = await analyticsTopics(t, 'outcome', 1)
  await withAdmin((admin) => ensureChangelog(admin, topics.input, topics.changelog, 1))
  const { client, injected } = clientWhoseFirstCommitLandsButFails()
  const settings = { WINDOW_SIZE_MS: 1_000, WINDOW_ADVANCE_MS: 0, WINDOW_GRACE_MS: 0, WINDOW_SLICE_MS: 1_000, ROLLING_COUNT_SPAN_MS: 1_000, ROLLING_DURATION_SPAN_MS: 1_000 }
  const metrics = new Registry()
  const processor = new WindowProcessor({
    client,
    connection: { 'bootstrap.servers': TEST_BROKERS },
    log: Fastify({ logger: false }).log,
    metrics,
    topics: { input: topics.input, output: topics.output, changelog: topics.changelog, late: topics.late, deadLetter: topics.dlq },
    groupId: topics.group,
    instanceId: 'outcome',
    staticMembership: false,
    spec: windowSpec(settings),
    longViewThresholdMs: 100,
    maxFutureMs: 0,
    commitIntervalMs: 100,
  })
  t.teardown(() => processor.stop())
  await processor.start()
  await waitFor('the processor to own its partition', () => processor.readiness().ok, 30_000, 50)

  await writeRecords(topics.input, Array.from({ length: 6 }, (_, i) => eventMessage({ page: 'o', user: `U${i}`, at: T0 + 10 + i, duration: 1 })))
  await waitFor('the injected commit failure', () => injected() === 1, 30_000, 20)
  // the processor rewound after the "failed" commit; now close the window
  await writeRecords(topics.input, [eventMessage({ page: 'o', user: 'close', at: T0 + 5_000, duration: 0 })])
  const finals = finalTable(await readWindows(topics.output, 1))
  t.same(finals, [{ page: 'o', start: T0, end: T0 + 1_000, count: 6, durationSum: 6, distinctUsers: 6, longViews: 0 }], 'each event counted once')
  t.match(await metrics.metrics(), /analytics_transactions_total\{result="aborted"\} 1\n/, 'the processor took the commit for failed')
})
