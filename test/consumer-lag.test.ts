import t from 'tap'
import {
  type MetricSample, deleteTopics, scrapeMetrics, startRole, uniqueName, waitFor, writeRecords,
} from '@pagestream/test-kit'

const event = (n: number) =>
  JSON.stringify({ name: `page-${n % 3}`, user: `U${n}`, date: new Date().toISOString(), duration: n })

/** The lag series of one group and topic on a role's /metrics, once there is one per partition. */
async function lagSeries (
  url: string, group: string, topic: string, partitions: number
): Promise<MetricSample[] | false> {
  const series = (await scrapeMetrics(url))
    .filter((s) => s.name === 'pagestream_consumer_lag' && s.labels.group === group && s.labels.topic === topic)
  return series.length === partitions && series
}

t.test('each consuming role shows its groups\' lag per partition on /metrics, 0 once caught up', async (t) => {
  const topic = uniqueName('lag-r1')
  const groups = {
    consumer: uniqueName('lag-cons'), transformer: uniqueName('lag-tr'), analytics: uniqueName('lag-an'),
  }
  const [output, windows] = [uniqueName('lag-r3'), uniqueName('lag-r4')]
  const internal = [`${groups.analytics}-windows-changelog`, `${groups.analytics}-repartition`]
  t.teardown(() => deleteTopics([topic, `${topic}.dlq`, `${topic}.late`, output, windows, ...internal]))
  const common = { KAFKA_TOPIC_PARTITIONS: '2', LOG_LEVEL: 'warn' }
  const consumer = await startRole(t, 'consumer', {
    ...common, CONSUMER_TOPIC: topic, CONSUMER_GROUP_ID: groups.consumer,
  })
  await writeRecords(topic, Array.from({ length: 20 }, (_, n) => ({ key: `page-${n % 3}`, value: event(n) })))
  const transformer = await startRole(t, 'transformer', {
    ...common,
    TRANSFORMER_INPUT_TOPIC: topic,
    TRANSFORMER_OUTPUT_TOPIC: output,
    TRANSFORMER_GROUP_ID: groups.transformer,
  })
  const analytics = await startRole(t, 'analytics', {
    ...common, ANALYTICS_INPUT_TOPIC: topic, ANALYTICS_OUTPUT_TOPIC: windows, ANALYTICS_GROUP_ID: groups.analytics,
  })

  const caughtUp = (series: MetricSample[] | false, most = 0) =>
    series !== false && series.every((s) => s.value <= most)
  const plain = [['consumer', consumer, groups.consumer], ['transformer', transformer, groups.transformer]] as const
  for (const [name, role, group] of plain) {
    const series = await waitFor(`${name} lag 0`, async () => {
      const found = await lagSeries(role.url, group, topic, 2)
      return caughtUp(found) && found
    }, 30_000)
    const labels = series.map((s) => [s.labels.role, s.labels.partition]).sort()
    t.same(labels, [[name, '0'], [name, '1']], `${name}: per partition`)
  }
  const rekey = await waitFor('the re-key stage lag 0', async () => {
    const found = await lagSeries(analytics.url, `${groups.analytics}-repartition`, topic, 2)
    return caughtUp(found) && found
  }, 30_000)
  t.ok(rekey.every((s) => s.labels.role === 'analytics'), 'analytics re-key stage: per partition of R2')
  // the window stage reads a transactional topic: the commit marker after the last record may count as 1
  const windowStage = await waitFor('the window stage lag caught up', async () => {
    const found = await lagSeries(analytics.url, groups.analytics, `${groups.analytics}-repartition`, 2)
    return caughtUp(found, 1) && found
  }, 30_000)
  t.equal(windowStage.length, 2, 'analytics window stage: per partition of the repartition topic')
})
