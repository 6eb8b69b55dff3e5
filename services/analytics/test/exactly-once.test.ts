import t from 'tap'
import { type RunningRole, readTopic, startRole, testKafka, waitFor, writeRecords } from '@pagestream/test-kit'
import {
  analyticsTopics, eventMessage, expectedFinals, finalTable, readWindows, startAnalytics, topicEnv, type FinalRow,
  type PageEventSpec,
} from './fixture.js'

const T0 = Date.parse('2024-01-01T00:00:00.000Z')
const SIZE = 1_000
const PAGES = Array.from({ length: 20 }, (_, i) => `page-${i}`)

/** Events with event time rising by 2 ms each, so no event is late and windows keep closing. */
function generate (count: number, from = 0): PageEventSpec[] {
  return Array.from({ length: count }, (_, i) => ({
    page: PAGES[(i * 7 + 3) % PAGES.length]!,
    user: `U${(i * 13) % 50}`,
    at: T0 + (from + i) * 2,
    duration: (i * 37) % 300,
  }))
}

/** One event per page far ahead: stream time passes every earlier window, so all of them close. */
function flush (after: number): PageEventSpec[] {
  return PAGES.map((page) => ({ page, user: 'flush', at: after + 60_000, duration: 0 }))
}

/** The expected finals, counted from the input topic with nothing of the processor's code. */
function countFromInput (values: Array<string | null>): FinalRow[] {
  const events = values.map(
    (value) => JSON.parse(value ?? 'null') as { name: string, user: string, date: string, duration: number }
  )
    .filter((event) => event.user !== 'flush')
    .map((event) => ({ page: event.name, user: event.user, at: Date.parse(event.date), duration: event.duration }))
  return expectedFinals(events, SIZE)
}

function restores (roles: RunningRole[]): Array<{
  partitions: number[], records: number, windows: number, ms: number,
}> {
  return roles.flatMap((role) => role.logs().filter(
    (line) => line.msg === 'restored window state from the changelog'
  ).map((line) => line.restore as { partitions: number[], records: number, windows: number, ms: number }))
}

const env = (topics: Parameters<typeof topicEnv>[0]) => ({
  ...topicEnv(topics),
  WINDOW_SIZE_MS: String(SIZE),
  WINDOW_GRACE_MS: '0',
  // the truth is counted from R2 by event time alone: no window may close on the clock while the writer pauses
  WINDOW_IDLE_CLOSE_MS: '0',
  COMMIT_INTERVAL_MS: '100',
  ANALYTICS_INSTANCE_ID: 'crash-test',
})

t.test('SIGKILL several times while events flow: the finals in R4 equal a count made from R2', async (t) => {
  const topics = await analyticsTopics(t, 'crash', 3)
  const events: PageEventSpec[] = []
  const roles: RunningRole[] = [await startRole(t, 'analytics', env(topics))]
  const producer = testKafka().producer({ 'linger.ms': 5, 'enable.idempotence': true })
  await producer.connect()
  t.teardown(() => producer.disconnect())

  let written = 0
  let writtenAt = 0
  const started = Date.now()
  let kills = 0
  const writing = (async () => {
    // paced batches until 5 after the last kill, so every kill falls while events flow, however slow the machine
    let batchesAfterLastKill = 0
    while (batchesAfterLastKill < 5) {
      const batch = generate(1000, events.length)
      await producer.send({ topic: topics.input, messages: batch.map(eventMessage) })
      events.push(...batch)
      written = events.length
      if (kills === 4) batchesAfterLastKill += 1
      await new Promise((resolve) => setTimeout(resolve, 250))
    }
    writtenAt = Date.now()
  })()

  let writtenAtLastKill = 0
  while (kills < 4) {
    await new Promise((resolve) => setTimeout(resolve, 1_000 + kills * 200))
    await roles.at(-1)!.stop('SIGKILL')
    kills += 1
    writtenAtLastKill = written
    t.comment(`SIGKILL ${kills} after ${written} events written`)
    roles.push(await startRole(t, 'analytics', env(topics)))
  }
  await writing
  t.ok(writtenAtLastKill < events.length, 'every kill happened while events were still being written')
  await producer.send({ topic: topics.input, messages: flush(events.at(-1)!.at).map(eventMessage) })

  const input = await readTopic(topics.input, { count: events.length + PAGES.length, timeoutMs: 60_000, settleMs: 500 })
  t.equal(input.length, events.length + PAGES.length, 'R2 holds every event once')
  const expected = countFromInput(input.map((r) => r.value))
  const records = await readWindows(topics.output, expected.length, 60_000)
  const doneAt = Date.now()
  const elapsed = (doneAt - started) / 1000
  const finals = finalTable(records)
  const keys = finals.map((row) => `${row.page}@${row.start}`)
  t.equal(new Set(keys).size, keys.length, 'no window has two final records')
  t.equal(finals.length, expected.length, `${expected.length} windows closed`)
  t.same(finals, expected, 'every final record equals the independent count')
  const seen = restores(roles)
  t.ok(seen.slice(1).some((r) => r.windows > 0), 'restarted instances restored open windows from the changelog')
  const slowest = Math.max(...seen.map((r) => r.ms))
  t.comment(`crash run: ${events.length} events, ${kills} SIGKILLs, all finals in R4 after ${elapsed.toFixed(1)} s ` +
    `(${Math.round(events.length / elapsed)} events/s end to end, paced by the writer; ` +
    `the last finals ${((doneAt - writtenAt) / 1000).toFixed(1)} s after the last write, ` +
    'including the input re-read); ' +
    `restores: ${seen.map((r) => `${r.ms} ms/${r.records} records/${r.windows} windows`).join(', ')}; ` +
    `slowest ${slowest} ms`)
})

t.test('a restart after SIGKILL continues the open windows from the changelog', async (t) => {
  const topics = await analyticsTopics(t, 'restore', 3)
  // 100 ms slices: the sub-totals per slice must come back from the changelog as well
  const first = await startRole(t, 'analytics', { ...env(topics), WINDOW_SLICE_MS: '100' })
  const open = (count: number, user: string, at = 100) => Array.from({
    length: count,
  }, (_, i) => ({ page: 'restored', user: `${user}${i}`, at: T0 + at + i, duration: 200 }))
  await writeRecords(topics.input, open(10, 'A').map(eventMessage))
  // the first 10 are committed: offsets, changelog and an update in R4, in one transaction
  await waitFor('the update of the open window', async () => {
    const records = await readTopic(topics.output, { count: 1, timeoutMs: 3_000, settleMs: 200 })
    return records.some((r) => JSON.parse(r.value ?? '{}').count === 10)
  }, 30_000)
  await first.stop('SIGKILL')
  const second = await startRole(t, 'analytics', { ...env(topics), WINDOW_SLICE_MS: '100' })
  const [restore] = restores([second])
  t.ok(restore !== undefined && restore.windows >= 1, 'the restarted instance restored the open window')
  t.comment(`restore after SIGKILL: ${restore?.ms} ms for ${restore?.records} changelog records`)
  await writeRecords(
    topics.input,
    [...open(5, 'B', 600), { page: 'restored', user: 'X', at: T0 + 10_000, duration: 1 }].map(eventMessage)
  )
  const finals = finalTable(await readWindows(topics.output, 1))
  t.same(finals, [
    { page: 'restored', start: T0, end: T0 + SIZE, count: 15, durationSum: 3000, distinctUsers: 15, longViews: 15 },
  ],
  'the final counts the events before and after the crash exactly once')
  const final = (await readTopic(topics.output, { count: 1 })).map(
    (r) => JSON.parse(r.value ?? '{}') as Record<string, unknown>
  ).find((r) => r.final === true)
  t.match(final, {
    sliceMs: 100, sliceCounts: [0, 10, 0, 0, 0, 0, 5, 0, 0, 0], sliceDurationSums: [0, 2000, 0, 0, 0, 0, 1000, 0, 0, 0],
  },
  'and its slices: the 10 before the crash restored into theirs, the 5 after it in theirs')
})

t.test('throughput: a backlog of events processed by one instance', async (t) => {
  const topics = await analyticsTopics(t, 'throughput', 3)
  const count = 100_000
  await writeRecords(topics.input, generate(count).map(eventMessage))
  const spawned = Date.now()
  const role = await startRole(t, 'analytics', env(topics), { waitReady: false })
  const metric = async (pattern: RegExp) => {
    const text = await (await fetch(`${role.url}/metrics`)).text()
    return Number(pattern.exec(text)?.[1] ?? 0)
  }
  await waitFor('every event counted',
    async () => await metric(/^analytics_events_total\{[^}]*\} (\d+)/m) === count, 60_000, 10)
  const doneAt = Date.now()
  await waitFor('them committed',
    async () => await metric(/^analytics_transactions_total\{[^}]*result="committed"[^}]*\} (\d+)/m) > 0, 10_000, 10)
  // from the moment the partitions were restored and handed to the consumer (the role's own log)
  const assignedAt = role.logs().find((line) => line.msg === 'partitions assigned')?.time as number
  t.ok(assignedAt > spawned, 'the role logged its assignment')
  const seconds = (doneAt - assignedAt) / 1000
  t.comment(`throughput: ${count} events in ${seconds.toFixed(2)} s from assignment = ` +
    `${Math.round(count / seconds)} events/s ` +
    `(${Math.round(count / ((doneAt - spawned) / 1000))} events/s counting process start, connect and restore)`)
  const metrics = await (await fetch(`${role.url}/metrics`)).text()
  const open = Number(/^analytics_open_windows\{[^}]*\} (\d+)/m.exec(metrics)?.[1] ?? -1)
  t.ok(open >= 0 && open <= PAGES.length, `closed windows are pruned: ${open} open windows held after ${count} events`)
  const expected = countFromInput(generate(count).map((e) => eventMessage(e).value))
  // the newest window of each page stays open (nothing later arrived)
  const closed = expected.filter((row) => expected.some((other) => other.page === row.page && other.start > row.start))
  const finals = finalTable(await readWindows(topics.output, closed.length, 60_000))
  t.same(finals, closed, 'and counted exactly')
})

t.test('fenced by a newer instance with its transactional.id: the processor steps down instead of fencing back, ' +
  'and the newer one counts everything once', async (t) => {
  const topics = await analyticsTopics(t, 'fenced', 1)
  const fastify = await startAnalytics(t, { ...env(topics), ANALYTICS_INSTANCE_ID: 'fenced' })
  const at = (offset: number) => T0 + offset
  await writeRecords(topics.input, Array.from({
    length: 6,
  }, (_, i) => eventMessage({ page: 'f', user: `A${i}`, at: at(10 + i), duration: 1 })))
  await waitFor('the first 6 events committed', async () => {
    const records = await readTopic(topics.output, { count: 1, timeoutMs: 3_000, settleMs: 200 })
    return records.some((r) => JSON.parse(r.value ?? '{}').count === 6)
  }, 30_000)

  // a newer producer with the same transactional.id: its initTransactions fences the processor's producer
  const zombie = testKafka().producer({ 'transactional.id': `${topics.group}-fenced`, 'enable.idempotence': true })
  await zombie.connect()
  t.teardown(() => zombie.disconnect().catch(() => {}))
  await writeRecords(topics.input, [
    ...Array.from({ length: 4 }, (_, i) => eventMessage({ page: 'f', user: `B${i}`, at: at(500 + i), duration: 2 })),
    eventMessage({ page: 'f', user: 'close', at: at(5_000), duration: 0 }),
  ])
  await waitFor('the fenced processor to step down', async () => {
    const ready = await fastify.inject('/health/ready')
    return ready.statusCode === 503 && /fenced by another instance .*stepped down/.test(ready.body)
  }, 30_000)
  const metrics = (await fastify.inject('/metrics')).body
  t.match(metrics, /analytics_transactions_total\{result="aborted",role="analytics"\} 1\n/,
    'one transaction failed, and it did not fence back and fail again')
  // 30 commit intervals: a processor fencing back would have failed again by now
  await new Promise((resolve) => setTimeout(resolve, 3_000))
  t.match(
    (await fastify.inject('/metrics')).body,
    /analytics_transactions_total\{result="aborted",role="analytics"\} 1\n/,
    'still one: the stepped-down instance tries no more transactions'
  )

  // the instance that takes the id over (a restart with the same ANALYTICS_INSTANCE_ID) continues from the last commit
  await startAnalytics(t, { ...env(topics), ANALYTICS_INSTANCE_ID: 'fenced' })
  const finals = finalTable(await readWindows(topics.output, 1))
  t.same(
    finals,
    [{ page: 'f', start: at(0), end: at(SIZE), count: 10, durationSum: 14, distinctUsers: 10, longViews: 0 }],
    'the final counts each event once'
  )
})
