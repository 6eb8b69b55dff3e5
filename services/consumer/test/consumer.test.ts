import t from 'tap'
import type { ConsumerStatus } from '../src/app.js'
import { deleteTopics, readTopic, startRole, testKafka, uniqueName, waitFor, writeRecords } from '@pagestream/test-kit'

const valid = (n: number) =>
  JSON.stringify({ name: `page-${n}`, user: `U${n}`, date: '2024-05-01T10:00:00.000Z', duration: n })
const loggedEvents = (logs: Array<Record<string, unknown>>) =>
  logs.filter((l) => l.msg === 'page event').map((l) => l.event as { name: string })

t.test('logs every valid event, dead-letters the malformed ones with their reason, keeps running', async (t) => {
  const topic = uniqueName('cons-r1')
  const group = uniqueName('cons-group')
  t.teardown(() => deleteTopics([topic, `${topic}.dlq`]))
  const consumer = await startRole(t, 'consumer', {
    CONSUMER_TOPIC: topic, CONSUMER_GROUP_ID: group, KAFKA_TOPIC_PARTITIONS: '1',
  })

  await writeRecords(topic, [
    { key: 'page-1', value: valid(1) },
    { key: 'x', value: '{not json' },
    { key: 'page-2', value: valid(2) },
    { key: 'x', value: JSON.stringify({ name: 'x', date: '2024-05-01T10:00:00Z', duration: 1 }) },
    { key: 'page-3', value: valid(3) },
    { key: 'x', value: JSON.stringify({ name: 'x', user: 'U', date: 'soon', duration: 1 }) },
    { key: 'page-4', value: valid(4) },
  ])
  await waitFor('4 events logged', () => loggedEvents(consumer.logs()).length === 4)
  t.same(loggedEvents(consumer.logs()).map((e) => e.name), ['page-1', 'page-2', 'page-3', 'page-4'],
    'in order, every valid one')

  const dead = await readTopic(`${topic}.dlq`, { count: 3 })
  t.equal(dead.length, 3)
  t.same(dead.map((d) => d.headers['dlq-source-offset']), ['1', '3', '5'])
  t.ok(dead.every((d) => d.headers['dlq-source-topic'] === topic && d.headers['dlq-source-partition'] === '0'))
  t.match(dead[0]?.headers['dlq-error'], /not JSON/)
  t.match(dead[1]?.headers['dlq-error'], /^user: is required/)
  t.match(dead[2]?.headers['dlq-error'], /^date: must be/)
  t.equal(dead[0]?.value, '{not json', 'the poison record is kept as it was')

  await writeRecords(topic, [{ key: 'page-5', value: valid(5) }])
  await waitFor('the consumer to go on after poison', () => loggedEvents(consumer.logs()).length === 5)
  const status = await (await fetch(`${consumer.url}/status`)).json() as Record<string, unknown>
  t.match(status, { topic, group, logged: 5, deadLettered: 3, partitions: 1 })

  t.equal(await consumer.stop('SIGTERM'), 0)
  const restarted = await startRole(t, 'consumer', { CONSUMER_TOPIC: topic, CONSUMER_GROUP_ID: group })
  await writeRecords(topic, [{ key: 'page-6', value: valid(6) }])
  await waitFor('the new event after a restart', () => loggedEvents(restarted.logs()).length >= 1)
  t.same(loggedEvents(restarted.logs()).map((e) => e.name), ['page-6'],
    'committed offsets: nothing is logged twice after a restart')
})

t.test('one bad record read by three roles: each dead letter says which role and group sent it', async (t) => {
  const topic = uniqueName('cons-shared')
  const groups = { consumer: uniqueName('dlq-cons'), transformer: uniqueName('dlq-tr'), analytics: uniqueName('dlq-a') }
  const [output, windows] = [uniqueName('dlq-out'), uniqueName('dlq-r4')]
  const internal = [`${topic}.late`, `${groups.analytics}-windows-changelog`, `${groups.analytics}-repartition`]
  t.teardown(() => deleteTopics([topic, `${topic}.dlq`, output, windows, ...internal]))
  const common = { KAFKA_TOPIC_PARTITIONS: '1', LOG_LEVEL: 'warn' }
  await startRole(t, 'consumer', { ...common, CONSUMER_TOPIC: topic, CONSUMER_GROUP_ID: groups.consumer })
  await startRole(t, 'transformer', {
    ...common,
    TRANSFORMER_INPUT_TOPIC: topic,
    TRANSFORMER_OUTPUT_TOPIC: output,
    TRANSFORMER_GROUP_ID: groups.transformer,
  })
  await startRole(t, 'analytics', {
    ...common, ANALYTICS_INPUT_TOPIC: topic, ANALYTICS_OUTPUT_TOPIC: windows, ANALYTICS_GROUP_ID: groups.analytics,
  })

  await writeRecords(topic, [{ key: 'x', value: '{not json' }])
  const letters = await readTopic(`${topic}.dlq`, { count: 3 })
  t.equal(letters.length, 3, 'one dead letter per reading role')
  const byRole = new Map(letters.map((l) => [l.headers['dlq-role'], l]))
  t.same([...byRole.keys()].sort(), ['analytics', 'consumer', 'transformer'], 'dlq-role names the role')
  t.equal(byRole.get('consumer')?.headers['dlq-consumer-group'], groups.consumer, 'dlq-consumer-group names its group')
  t.equal(byRole.get('transformer')?.headers['dlq-consumer-group'], groups.transformer)
  // analytics reads its input in the re-keying stage, whose group is derived from the role's
  t.equal(byRole.get('analytics')?.headers['dlq-consumer-group'], `${groups.analytics}-repartition`)
  const sameRecord = letters.every((l) => l.value === '{not json' && l.headers['dlq-source-offset'] === '0')
  t.ok(sameRecord, 'all three are the same record')
})

t.test('a static member fenced by a twin with its instance id: not ready, counted, then logs on', async (t) => {
  const topic = uniqueName('cons-fenced')
  const group = uniqueName('cons-fenced-group')
  t.teardown(() => deleteTopics([topic, `${topic}.dlq`]))
  const consumer = await startRole(t, 'consumer', {
    CONSUMER_TOPIC: topic, CONSUMER_GROUP_ID: group, CONSUMER_INSTANCE_ID: 'twin', KAFKA_TOPIC_PARTITIONS: '2',
  })
  await writeRecords(topic, [1, 2].map((n) => ({ key: `page-${n}`, value: valid(n) })))
  await waitFor('2 events logged', () => loggedEvents(consumer.logs()).length === 2)
  const ready = async () => (await fetch(`${consumer.url}/health/ready`)).status === 200
  const status = async () => await (await fetch(`${consumer.url}/status`)).json() as ConsumerStatus
  let sawNotReady = false
  const watching = new AbortController()
  const watch = (async () => {
    while (!watching.signal.aborted) {
      if (!await ready().catch(() => true)) sawNotReady = true
      await new Promise((resolve) => setTimeout(resolve, 20))
    }
  })()
  t.teardown(() => { watching.abort(); return watch })

  // a twin given the same group.instance.id, as two replicas on one default id would be
  const twin = testKafka().consumer({ 'group.id': group, 'group.instance.id': 'twin', 'enable.auto.commit': false })
  const timeout = new Promise((resolve) => setTimeout(resolve, 5_000))
  t.teardown(() => Promise.race([twin.disconnect().catch(() => {}), timeout]))
  await twin.connect()
  await twin.subscribe({ topics: [topic] })
  await twin.run({ eachMessage: async () => {} })
  await waitFor('the fenced consumer to be counted', async () => (await status()).fatalErrors >= 1, 30_000)
  t.match((await status()).lastError, /Fatal error|fenced/, '/status says why')
  const metrics = await (await fetch(`${consumer.url}/metrics`)).text()
  t.match(metrics, /pagestream_consumer_fatal_errors_total\{[^}]*\} [1-9]/, 'and /metrics counts it')
  await waitFor('readiness to have dropped', () => sawNotReady, 10_000)
  t.pass('not ready while it cannot make progress')

  await waitFor('a new consumer to be ready', ready, 60_000)
  await writeRecords(topic, [3, 4, 5].map((n) => ({ key: `page-${n}`, value: valid(n) })))
  await waitFor('the events after the fencing to be logged', () => loggedEvents(consumer.logs()).length >= 5, 30_000)
  const names = loggedEvents(consumer.logs()).map((e) => e.name).sort()
  t.same(names, ['page-1', 'page-2', 'page-3', 'page-4', 'page-5'], 'every event logged once, none lost')
})
