import t from 'tap'
import type { FastifyInstance } from 'fastify'
import {
  type RunningRole, readTopic, startRole, testKafka, topicExists, waitFor, writeRecords,
} from '@pagestream/test-kit'
import {
  type AnalyticsTopics, type FinalRow, analyticsTopics, expectedFinals, finalTable, readWindows, startAnalytics,
  topicEnv,
} from './fixture.js'
import { SseClient } from './sse-client.js'

const SIZE = 1_000
const PAGES = ['home', 'blog', 'shop', 'cart', 'help']
const PARTITIONS = 3

interface Spread { page: string, user: string, at: number, duration: number, key: string | null, partition?: number }

/**
 * Events over several pages and 1 s windows, written as a foreign writer would: a third with a null
 * key, a third round robin over explicit partitions, a third keyed by something else than the page.
 */
function spreadEvents (count: number, from: number, stepMs: number): Spread[] {
  return Array.from({ length: count }, (_, i) => {
    const page = PAGES[(i * 3 + (i >> 4)) % PAGES.length]!
    const event = { page, user: `U${(i * 7) % 23}`, at: from + i * stepMs, duration: (i * 41) % 250 }
    if (i % 3 === 0) return { ...event, key: null }
    if (i % 3 === 1) return { ...event, key: event.page, partition: i % PARTITIONS }
    return { ...event, key: `session-${i % 11}` }
  })
}

/** One event per page dated `at`: stream time passes every earlier window on every partition a page maps to. */
function flush (at: number): Spread[] {
  return PAGES.map((page) => ({ page, user: 'flush', at, duration: 0, key: null }))
}

function valueOf (event: Spread): string {
  const date = new Date(event.at).toISOString()
  return JSON.stringify({ name: event.page, user: event.user, date, duration: event.duration })
}

async function writeSpread (topic: string, events: Spread[]): Promise<void> {
  const producer = testKafka().producer({ 'linger.ms': 5, 'enable.idempotence': true })
  await producer.connect()
  try {
    for (let i = 0; i < events.length; i += 500) {
      const messages = events.slice(i, i + 500).map((e) => ({
        key: e.key, value: valueOf(e), ...(e.partition === undefined ? {} : { partition: e.partition }),
      }))
      await producer.send({ topic, messages })
    }
  } finally {
    await producer.disconnect()
  }
}

/**
 * The hop merges a page's events from every input partition, so their event time is no longer in
 * order on the repartition topic (a backlog read partition by partition most of all): the grace
 * period must cover that, as it must in Kafka Streams, or events go to the late topic.
 */
const GRACE = 30_000

const env = (topics: AnalyticsTopics, extra: Record<string, string> = {}) => ({
  ...topicEnv(topics),
  WINDOW_SIZE_MS: String(SIZE),
  WINDOW_GRACE_MS: String(GRACE),
  COMMIT_INTERVAL_MS: '100',
  // spans longer than the test: the SSE totals are every event of a page, whenever the stream is read
  ROLLING_COUNT_SPAN_MS: '300000',
  ROLLING_DURATION_SPAN_MS: '300000',
  SSE_INTERVAL_MS: '200',
  ...extra,
})

async function listening (fastify: FastifyInstance): Promise<string> {
  await fastify.listen({ host: '127.0.0.1', port: 0 })
  const address = fastify.server.address()
  return `http://127.0.0.1:${typeof address === 'object' && address !== null ? address.port : 0}`
}

interface QueryWindow {
  windowStart: string,
  count: number,
  durationSum: number,
  distinctUsers: number,
  longViews: number,
  final: boolean,
  combinedFinals?: number
}

/** The finals the query API serves for every page, as rows comparable with the truth. */
async function queriedFinals (fastify: FastifyInstance, from: number, to: number): Promise<FinalRow[]> {
  const rows: FinalRow[] = []
  for (const page of PAGES) {
    const range = `from=${new Date(from).toISOString()}&to=${new Date(to).toISOString()}`
    const response = await fastify.inject(`/api/pages/${page}/windows?${range}`)
    const { windows } = response.json() as { windows: QueryWindow[] }
    for (const w of windows.filter((window) => window.final)) {
      const start = Date.parse(w.windowStart)
      const { count, durationSum, distinctUsers, longViews } = w
      rows.push({ page, start, end: start + SIZE, count, durationSum, distinctUsers, longViews })
    }
  }
  return rows.sort((a, b) => a.page.localeCompare(b.page) || a.start - b.start)
}

async function rekeyed (fastify: FastifyInstance): Promise<number> {
  const metrics = (await fastify.inject('/metrics')).body
  return Number(/analytics_repartition_records_rekeyed_total\{[^}]*\} (\d+)/.exec(metrics)?.[1] ?? 0)
}

function perPage (events: Spread[], measure: 'count' | 'durationSum'): Record<string, number> {
  const totals: Record<string, number> = {}
  for (const page of [...PAGES].sort()) totals[page] = 0
  for (const event of events) totals[event.page]! += measure === 'count' ? 1 : event.duration
  return totals
}

/** Where each page's events sit on the input: more than one partition for every page, or the test proves nothing. */
async function inputSpread (topic: string, count: number): Promise<Map<string, Set<number>>> {
  const records = await readTopic(topic, { count, settleMs: 300 })
  const spread = new Map<string, Set<number>>()
  for (const record of records) {
    const page = (JSON.parse(record.value ?? '{}') as { name: string }).name
    spread.set(page, (spread.get(page) ?? new Set()).add(record.partition))
  }
  return spread
}

t.test('null-keyed, round-robin and foreign-keyed input: R4, SSE and the query API equal the truth', async (t) => {
  const topics = await analyticsTopics(t, 'repart', PARTITIONS)
  const fastify = await startAnalytics(t, env(topics))
  const base = await listening(fastify)
  const counts = await SseClient.open(`${base}/analytics`)
  const durations = await SseClient.open(`${base}/analyticsAggregate`)
  t.teardown(() => { counts.close(); durations.close() })

  // 600 events over 12 windows, dated in the last two minutes so the SSE spans hold all of them
  const from = Math.floor((Date.now() - 120_000) / SIZE) * SIZE
  const events = spreadEvents(600, from, 20)
  const end = flush(from + 20_000 + GRACE)
  await writeSpread(topics.input, events)
  // the stage re-keys each input partition on its own: a flush written with the events could pass them
  await waitFor('every event re-keyed', async () => await rekeyed(fastify) === events.length, 30_000)
  await writeSpread(topics.input, end)
  const spread = await inputSpread(topics.input, events.length + end.length)
  t.ok(PAGES.every((page) => (spread.get(page)?.size ?? 0) === PARTITIONS), 'every page on every input partition')

  const expected = expectedFinals(events, SIZE)
  const finals = finalTable(await readWindows(topics.output, expected.length, 60_000))
  t.equal(finals.length, expected.length, `one final per page-window (${expected.length})`)
  t.same(finals, expected, 'R4: count, durationSum, distinctUsers and longViews of every final equal the truth')

  const all = [...events, ...end]
  const same = (a: unknown, b: unknown) => JSON.stringify(a) === JSON.stringify(b)
  await waitFor('/analytics to count every event per page', () => same(counts.latest(), perPage(all, 'count')), 20_000)
  const durationSums = perPage(all, 'durationSum')
  await waitFor('/analyticsAggregate to sum every duration', () => same(durations.latest(), durationSums), 20_000)
  t.pass('SSE: both streams equal the truth per page')
  t.same(await queriedFinals(fastify, from, from + 20_000), expected, 'the query API serves the same finals')

  const metrics = (await fastify.inject('/metrics')).body
  const rekeyedTotal = new RegExp(`analytics_repartition_records_rekeyed_total\\{role="analytics"\\} ${all.length}\\n`)
  t.match(metrics, rekeyedTotal, 'the stage counts what it re-keyed')
  t.match(metrics, /analytics_view_combined_finals_total\{role="analytics"\} 0\n/, 'no page-window had a second writer')
  type Readiness = { checks: Record<string, { ok: boolean, detail?: string }> }
  const ready = (await fastify.inject('/health/ready')).json() as Readiness
  t.same(ready.checks.repartition, { ok: true, detail: `${PARTITIONS} partition(s) of ${topics.input} assigned` },
    'the stage joins the readiness checks')
  const repartitioned = await readTopic(topics.repartition, { count: all.length, settleMs: 300 })
  const pageOf = (value: string | null) => (JSON.parse(value ?? '{}') as { name: string }).name
  t.ok(repartitioned.every((record) => record.key === pageOf(record.value)), 'the repartition topic is keyed by page')
  const byPage = new Map<string, Set<number>>()
  for (const { key, partition } of repartitioned) byPage.set(key!, (byPage.get(key!) ?? new Set()).add(partition))
  t.ok([...byPage.values()].every((partitions) => partitions.size === 1), 'each page on one repartition partition')
})

t.test('a bad record on the input goes to its dead-letter topic with the reason, once', async (t) => {
  const topics = await analyticsTopics(t, 'repart-dlq', PARTITIONS)
  const fastify = await startAnalytics(t, env(topics))
  const from = Math.floor((Date.now() - 120_000) / SIZE) * SIZE
  await writeRecords(topics.input, [
    { value: valueOf({ page: 'home', user: 'a', at: from + 10, duration: 5, key: null }) },
    { key: 'x', value: 'not json', headers: { 'event-id': 'poison' } },
  ])
  await waitFor('the event re-keyed', async () => await rekeyed(fastify) === 1, 30_000)
  await writeRecords(topics.input, flush(from + 5_000 + GRACE).map((e) => ({ value: valueOf(e) })))
  const letters = await readTopic(topics.dlq, { count: 1, settleMs: 500 })
  t.same(letters.map((r) => [r.value, r.headers['event-id'], r.headers['dlq-source-topic']]),
    [['not json', 'poison', topics.input]], 'from the input, once')
  t.match(letters[0]?.headers['dlq-error'], /not JSON/)
  t.same(finalTable(await readWindows(topics.output, 1)).map((r) => [r.page, r.count]), [['home', 1]])
  t.match((await fastify.inject('/metrics')).body,
    /analytics_repartition_records_dead_lettered_total\{role="analytics"\} 1\n/)
})

t.test('ANALYTICS_INPUT_PARTITIONED_BY_PAGE on a spread input: the view sums several writers\' finals', async (t) => {
  const topics = await analyticsTopics(t, 'repart-skip', PARTITIONS)
  const fastify = await startAnalytics(t, env(topics, { ANALYTICS_INPUT_PARTITIONED_BY_PAGE: 'true' }))
  const from = Math.floor((Date.now() - 120_000) / SIZE) * SIZE
  const events = spreadEvents(300, from, 20)
  const end = [0, 1, 2].flatMap((partition) => flush(from + 20_000 + GRACE).map((e) => ({ ...e, partition })))
  await writeSpread(topics.input, [...events, ...end])
  const expected = expectedFinals(events, SIZE)
  const records = await readWindows(topics.output, expected.length * 2, 60_000)
  const finals = finalTable(records)
  t.ok(finals.length > expected.length,
    `R4 holds several finals of one page-window without the hop (${finals.length} for ${expected.length} windows)`)
  t.notOk(await topicExists(topics.repartition), 'no repartition topic')

  const servedCount = async () =>
    (await queriedFinals(fastify, from, from + 20_000)).reduce((sum, row) => sum + row.count, 0)
  await waitFor('the view to have read every final', async () => await servedCount() === events.length, 20_000)
  const served = await queriedFinals(fastify, from, from + 20_000)
  const strip = (rows: FinalRow[]) => rows.map(({ distinctUsers: _users, ...row }) => row)
  t.same(strip(served), strip(expected), 'the query API sums them: count, durationSum and longViews exact')
  t.ok(served.every((row, i) => row.distinctUsers >= expected[i]!.distinctUsers), 'distinct users an upper bound')
  const range = `from=${new Date(from).toISOString()}&to=${new Date(from + 20_000).toISOString()}`
  const { windows } = (await fastify.inject(`/api/pages/home/windows?${range}`)).json() as { windows: QueryWindow[] }
  t.ok(windows.some((w) => (w.combinedFinals ?? 0) >= 2), 'a summed window says how many finals it combines')
  t.match((await fastify.inject('/metrics')).body, /analytics_view_combined_finals_total\{role="analytics"\} [1-9]/,
    'and counted in a metric')
})

t.test('SIGKILL of the role while a spread input flows: exactly once through the repartition hop', async (t) => {
  const topics = await analyticsTopics(t, 'repart-kill', PARTITIONS)
  const killEnv = env(topics, { ANALYTICS_INSTANCE_ID: 'repart-kill', WINDOW_GRACE_MS: '120000' })
  const roles: RunningRole[] = [await startRole(t, 'analytics', killEnv)]
  const T0 = Date.parse('2024-01-01T00:00:00.000Z')
  const events = spreadEvents(30_000, T0, 2)
  let written = 0
  const writing = (async () => {
    for (let i = 0; i < events.length; i += 1_000) {
      await writeSpread(topics.input, events.slice(i, i + 1_000))
      written = i + 1_000
      await new Promise((resolve) => setTimeout(resolve, 700))
    }
  })()
  for (let kill = 1; kill <= 3; kill += 1) {
    const before = written
    await waitFor('more events written', () => written > before, 20_000)
    t.equal(await roles.at(-1)!.stop('SIGKILL'), 'SIGKILL', `SIGKILL ${kill} after ${written} events written`)
    roles.push(await startRole(t, 'analytics', killEnv))
  }
  await writing
  t.ok(roles.length === 4, 'three kills while writing')
  // the flush goes in once the stage re-keyed everything: on its own partition it could pass other events
  await readTopic(topics.repartition, { count: events.length, settleMs: 200, timeoutMs: 60_000 })
  const end = [0, 1, 2].flatMap((partition) => flush(T0 + 300_000).map((e) => ({ ...e, partition })))
  await writeSpread(topics.input, end)
  const expected = expectedFinals(events, SIZE)
  const finals = finalTable(await readWindows(topics.output, expected.length, 90_000))
  const keys = finals.map((row) => `${row.page}@${row.start}`)
  t.equal(new Set(keys).size, keys.length, 'no page-window has two finals')
  t.same(finals, expected, 'every final equals the truth: nothing lost, nothing doubled across the hop')
  const rekeyed = await readTopic(topics.repartition, { count: events.length + 15, settleMs: 1_000, timeoutMs: 60_000 })
  t.equal(rekeyed.length, events.length + 15, 'read_committed, the repartition topic holds each input record once')
})
