import t from 'tap'
import { startRole, waitFor, writeRecords } from '@pagestream/test-kit'
import {
  STEADY_T0, analyticsTopics, eventMessage, finalTable, oneSecondWindows, processorReadiness, readWindows,
  steadyEvents, windowCounts,
} from './fixture.js'

const T0 = STEADY_T0
const PAGES = ['a', 'b', 'c', 'd', 'e']

const events = (from: number, count: number) => steadyEvents(from, count, PAGES)

const metric = async (url: string, pattern: RegExp) => pattern.test(await (await fetch(`${url}/metrics`)).text())

t.test('a replica fenced by a static member with its instance id is not ready, ' +
  'and takes over again once that one is gone', async (t) => {
  const topics = await analyticsTopics(t, 'fenced', 2)
  // ANALYTICS_INSTANCE_ID set: static membership (group.instance.id = transactional.id), as in compose;
  // no closing on the clock, so the fenced replica has nothing to commit: only its consumer learns of the fence.
  // Both stages (the re-keying hop and the windows) follow one recovery policy: out while the twin lives, back after
  const env = oneSecondWindows(topics, { WINDOW_IDLE_CLOSE_MS: '0', ANALYTICS_INSTANCE_ID: 'same' })
  const survivor = await startRole(t, 'analytics', env)
  await writeRecords(topics.input, events(0, 300).map(eventMessage))
  await waitFor('the first replica to commit',
    () => metric(survivor.url, /analytics_transactions_total\{[^}]*result="committed"[^}]*\} [1-9]/), 30_000)

  // the same static member and transactional.id: it fences the running replica's consumer and producer
  const intruder = await startRole(t, 'analytics', env)
  await waitFor('the fenced replica to report not ready', async () => {
    const { status, detail } = await processorReadiness(survivor.url)
    return status === 503 && /stepped down until no other member .* uses instance id same/.test(detail)
  }, 30_000)
  t.ok(await metric(survivor.url, /analytics_consumer_fatal_errors_total\{[^}]*\} 1\n/),
    'the fatal consumer error is counted')
  t.ok(await metric(survivor.url, /analytics_stand_downs_total\{[^}]*reason="consumer fatal error"[^}]*\} 1\n/),
    'and so is the stand-down')
  await writeRecords(topics.input, events(300, 300).map(eventMessage))
  await waitFor(
    'the intruder to own both partitions',
    async () => (await processorReadiness(intruder.url)).detail === 'owns partitions [0,1]',
    45_000
  )
  t.equal((await processorReadiness(survivor.url)).status, 503,
    'the fenced replica stays out while the other one lives')
  await waitFor('its hop to stand down as well', async () =>
    await metric(survivor.url, /analytics_repartition_stand_downs_total\{[^}]*\} 1\n/), 30_000)

  // the intruder dies, as one that fails on a taken port would: its static membership expires after the session timeout
  await intruder.stop('SIGKILL')
  await waitFor(
    'the fenced replica to recover',
    async () => (await processorReadiness(survivor.url)).detail === 'owns partitions [0,1]',
    60_000
  )
  t.ok(await metric(survivor.url, /analytics_recoveries_total\{[^}]*\} 1\n/), 'the recovery is counted in /metrics')
  await waitFor('the fenced replica\'s hop to recover too', async () =>
    await metric(survivor.url, /analytics_repartition_recoveries_total\{[^}]*\} 1\n/), 30_000)
  const flush = PAGES.map((page) => ({ page, user: 'flush', at: T0 + 60_000, duration: 0 }))
  await writeRecords(topics.input, [...events(600, 300), ...flush].map(eventMessage))

  const expected = windowCounts(events(0, 900), 1000)
  const finals = finalTable(await readWindows(topics.output, expected.size, 60_000))
  t.same(Object.fromEntries(finals.map((row) => [`${row.page}@${row.start}`, row.count])), Object.fromEntries(expected),
    'every window final once, each event counted once')
  t.equal(await survivor.stop(), 0, 'and it stops cleanly')
})

t.test('replicas started without ANALYTICS_INSTANCE_ID on one host get ids of their own ' +
  'and share the partitions', async (t) => {
  const topics = await analyticsTopics(t, 'default-ids', 2)
  const env = oneSecondWindows(topics)
  const first = await startRole(t, 'analytics', env)
  const second = await startRole(t, 'analytics', env)
  await waitFor('each replica to own one partition', async () => {
    const details = [(await processorReadiness(first.url)).detail, (await processorReadiness(second.url)).detail].sort()
    return details[0] === 'owns partitions [0]' && details[1] === 'owns partitions [1]'
  }, 45_000)
  const started = (role: typeof first) => role.logs().find((line) => line.msg === 'processor started')?.transactionalId
  t.not(started(first), started(second), 'two transactional.ids, so neither fences the other')
  t.notOk(await metric(first.url, /analytics_stand_downs_total\{[^}]*\} [1-9]/), 'and nobody stood down')
})
