import t from 'tap'
import { startRole, writeRecords } from '@pagestream/test-kit'
import { chromiumPage } from '@pagestream/test-kit/browser'
import { analyticsTopics, eventMessage, topicEnv } from './fixture.js'

interface DashboardApi {
  measure(): string, heldSpanMs(kind: string): number, keptSpanMs(): number, points(kind: string): number,
}

t.test('a dashboard left open keeps only what its chart can show, of the measure not shown too', async (t) => {
  const topics = await analyticsTopics(t, 'dash-memory')
  const analytics = await startRole(
    t, 'analytics', { ...topicEnv(topics), ANALYTICS_INSTANCE_ID: 'dash-memory', SSE_INTERVAL_MS: '100' }
  )
  await writeRecords(
    topics.input, ['home', 'blog'].map((page) => eventMessage({ page, user: 'U', at: Date.now(), duration: 5 }))
  )

  // a narrow chart shows a few seconds (40 ms per pixel), so the test need not wait long
  const page = await chromiumPage(t, { width: 220, height: 600 })
  const errors: string[] = []
  page.on('pageerror', (error) => { errors.push(error.message) })
  await page.goto(`${analytics.url}/`)
  await page.locator('#connection[data-state="open"]').waitFor({ timeout: 15_000 })
  await page.locator('#pages tbody tr[data-page="blog"]').waitFor({ timeout: 15_000 })

  const read = () => page.evaluate(() => {
    const api = (globalThis as unknown as { pagestream: DashboardApi }).pagestream
    return {
      measure: api.measure(),
      kept: api.keptSpanMs(),
      count: api.heldSpanMs('count'),
      duration: api.heldSpanMs('duration'),
      points: api.points('duration'),
    }
  })
  const first = await read()
  t.equal(first.measure, 'count', 'the count is shown, the duration sum is not')
  t.ok(first.kept > 1_000 && first.kept < 20_000, `the chart keeps ${first.kept} ms (its width and its 1 s delay)`)
  // points arrive every 100 ms: well past the visible span, an untrimmed series holds more than it
  await page.waitForFunction((span) => performance.now() > span + 4_000, first.kept, { timeout: 60_000, polling: 200 })
  const later = await read()
  // one point (100 ms) and a frame or two of slack either way
  const slack = 500
  t.ok(later.duration <= later.kept + slack,
    `the hidden duration series holds ${later.duration} ms of points, for a chart that keeps ${later.kept} ms`)
  t.ok(later.count <= later.kept + slack, `the charted count series holds ${later.count} ms (Smoothie trims it)`)
  t.ok(later.duration >= later.kept - slack, 'and still enough to fill the chart when switched to')
  t.same(errors, [], 'no script error')
})
