import t from 'tap'
import { startRole, waitFor, writeRecords } from '@pagestream/test-kit'
import { analyticsTopics, eventMessage, finalTable, readWindows, type PageEventSpec } from './fixture.js'

// five minutes ago on a window boundary: inside the view's retention, so the view-only replica holds it
const T0 = Math.floor(Date.now() / 60_000) * 60_000 - 5 * 60_000
const PAGES = Array.from({ length: 12 }, (_, i) => `page-${i}`)

function events (count: number): PageEventSpec[] {
  const list = Array.from({ length: count }, (_, i) => ({
    page: PAGES[(i * 5 + 1) % PAGES.length]!, user: `U${(i * 11) % 40}`, at: T0 + i * 3, duration: (i * 53) % 400,
  }))
  return [...list, ...PAGES.map((page) => ({ page, user: 'flush', at: T0 + count * 3 + 60_000, duration: 0 }))]
}

async function owned (url: string): Promise<string> {
  const ready = await (await fetch(`${url}/health/ready`)).json() as { checks: { processor: { detail: string } } }
  return ready.checks.processor.detail
}

t.test('two replicas sharing the input partitions give the same finals as one instance', async (t) => {
  const topics = await analyticsTopics(t, 'replicas', 3)
  const single = await analyticsTopics(t, 'single', 1)
  // events dated minutes ago, written in chunks: only event time closes windows, whatever pauses the writer makes
  const common = {
    ANALYTICS_INPUT_TOPIC: topics.input,
    WINDOW_SIZE_MS: '2000',
    WINDOW_GRACE_MS: '500',
    COMMIT_INTERVAL_MS: '100',
    WINDOW_IDLE_CLOSE_MS: '0',
  }
  // one instance, its own group and output
  await startRole(
    t,
    'analytics',
    {
      ...common,
      ANALYTICS_OUTPUT_TOPIC: single.output,
      ANALYTICS_GROUP_ID: single.group,
      ANALYTICS_INSTANCE_ID: 'only',
    }
  )
  // two replicas in another group (dynamic members; the crash test covers static ones), writing to another output
  const a = await startRole(
    t,
    'analytics',
    {
      ...common,
      ANALYTICS_OUTPUT_TOPIC: topics.output,
      ANALYTICS_GROUP_ID: topics.group,
      ANALYTICS_INSTANCE_ID: 'a',
      ANALYTICS_STATIC_MEMBERSHIP: 'false',
    }
  )
  const input = events(12_000)
  let written = 0
  let bJoined = false
  const writing = (async () => {
    for (let i = 0; i < input.length; i += 1000) {
      // the last events wait for b: it joins while events flow, however slowly it starts on a busy machine
      if (i + 1000 >= input.length - PAGES.length) await waitFor('b to join', () => bJoined, 120_000)
      await writeRecords(topics.input, input.slice(i, i + 1000).map(eventMessage))
      written = Math.min(input.length, i + 1000)
      await new Promise((resolve) => setTimeout(resolve, 200))
    }
  })()
  await waitFor('the first events to flow', () => written >= 2000)
  // b joins while events flow: a hands partitions over in the rebalance
  const b = await startRole(
    t,
    'analytics',
    {
      ...common,
      ANALYTICS_OUTPUT_TOPIC: topics.output,
      ANALYTICS_GROUP_ID: topics.group,
      ANALYTICS_INSTANCE_ID: 'b',
      ANALYTICS_STATIC_MEMBERSHIP: 'false',
    }
  )
  bJoined = true
  const joinedAt = written
  await writing
  t.ok(joinedAt < input.length, `b joined after ${joinedAt} of ${input.length} events`)

  const windows = new Set(input.filter(
    (e) => e.user !== 'flush'
  ).map((e) => `${e.page}@${Math.floor(e.at / 2000)}`)).size
  const one = finalTable(await readWindows(single.output, windows, 60_000))
  const two = finalTable(await readWindows(topics.output, windows, 60_000))
  t.equal(one.length, windows, `the single instance closed all ${windows} windows`)
  t.equal(two.length, windows, 'so did the pair, each window once')
  t.same(two, one, 'identical finals')
  t.equal(one.reduce((sum, row) => sum + row.count, 0), 12_000, 'and together they count every event once')
  // a replica without the processor serves the same windows, read from R4
  const viewer = await startRole(
    t,
    'analytics',
    { ...common, ANALYTICS_OUTPUT_TOPIC: topics.output, ANALYTICS_GROUP_ID: topics.group, ANALYTICS_PROCESSOR: 'false' }
  )
  const ready = await (await fetch(`${viewer.url}/health/ready`)).json() as { checks: Record<string, unknown> }
  t.notOk('processor' in ready.checks, 'the view-only replica runs no processor')
  const from = new Date(T0 - 60_000).toISOString()
  const to = new Date(T0 + 120_000).toISOString()
  for (const page of PAGES) {
    const body = await (await fetch(`${viewer.url}/api/pages/${page}/windows?from=${from}&to=${to}`)).json() as {
      windows: Array<{ windowStart: string, count: number, final: boolean }>,
    }
    const served = body.windows.filter((w) => w.final).map((w) => [Date.parse(w.windowStart), w.count])
    const final = one.filter((row) => row.page === page).map((row) => [row.start, row.count])
    t.same(served, final, `the view-only replica serves the finals of ${page}`)
  }
  const [ownedA, ownedB] = [await owned(a.url), await owned(b.url)]
  t.comment(`replica a ${ownedA}; replica b ${ownedB}`)
  t.notMatch(ownedA, /\[\]$/, 'replica a owns partitions')
  t.notMatch(ownedB, /\[\]$/, 'replica b owns partitions')
})
