import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { ROOT, createTopics, deleteTopics, startRole, uniqueName, writeRecords } from '@pagestream/test-kit'
import { chromiumPage } from '@pagestream/test-kit/browser'

t.test('the dashboard charts and tabulates fresh pages from R2, under a strict CSP, and reconnects', async (t) => {
  const input = uniqueName('dash-in')
  const output = uniqueName('dash-out')
  const group = uniqueName('dash-group')
  await createTopics(t, [input, output], 2)
  t.teardown(() => deleteTopics([`${group}-windows-changelog`, `${input}.late`, `${input}.dlq`]))
  const env = {
    ANALYTICS_INPUT_TOPIC: input,
    ANALYTICS_OUTPUT_TOPIC: output,
    ANALYTICS_GROUP_ID: group,
    ANALYTICS_INSTANCE_ID: 'dashboard',
    COMMIT_INTERVAL_MS: '200',
    WINDOW_SIZE_MS: '1000',
  }
  const analytics = await startRole(t, 'analytics', env)

  const headers = (await fetch(`${analytics.url}/`)).headers
  const csp = headers.get('content-security-policy') ?? ''
  t.match(csp, /default-src 'self'/)
  t.match(csp, /script-src 'self'(;|$)/)
  t.match(csp, /connect-src 'self'/)
  t.notMatch(csp, /unsafe-inline|unsafe-eval/, 'nothing inline is allowed')
  const smoothie = await fetch(`${analytics.url}/vendor/smoothie.js`)
  t.equal(smoothie.status, 200, 'Smoothie Charts comes from the analytics service itself')
  t.match(await smoothie.text(), /SmoothieChart/)

  const page = await chromiumPage(t, { width: 1200, height: 800 })
  const console: string[] = []
  page.on('console', (message) => { console.push(`${message.type()}: ${message.text()}`) })
  page.on('pageerror', (error) => { console.push(`pageerror: ${error.message}`) })

  await page.goto(`${analytics.url}/`)
  await page.locator('#connection[data-state="open"]').waitFor({ timeout: 15_000 })

  const home = uniqueName('home')
  const blog = uniqueName('blog')
  const now = Date.now()
  const date = (i: number) => new Date(now - i * 10).toISOString()
  const events = [
    ...[120, 80, 300, 45, 10, 150].map((duration, i) => ({ name: home, user: `U${i % 4}`, date: date(i), duration })),
    ...[500, 250, 70].map((duration, i) => ({ name: blog, user: `U${i}`, date: date(i), duration })),
  ]
  await writeRecords(input, events.map((event) => ({ key: event.name, value: JSON.stringify(event) })))

  const row = (name: string) => page.locator(`#pages tbody tr[data-page="${name}"]`)
  await row(home).locator('.count').filter({ hasText: /^6$/ }).waitFor({ timeout: 15_000 })
  await row(blog).locator('.count').filter({ hasText: /^3$/ }).waitFor({ timeout: 15_000 })
  await row(home).locator('.duration').filter({ hasText: /^705$/ }).waitFor({ timeout: 15_000 })
  await row(blog).locator('.duration').filter({ hasText: /^820$/ }).waitFor({ timeout: 15_000 })
  t.pass('the table shows 6 and 3 events, 705 and 820 ms')

  const dashboard = () => page.evaluate(() => {
    type Api = { measure(): string, chartedPages(): string[], lastValues(kind: string): Record<string, number> }
    const api = (globalThis as unknown as { pagestream: Api }).pagestream
    return {
      measure: api.measure(),
      charted: api.chartedPages(),
      count: api.lastValues('count'),
      duration: api.lastValues('duration'),
    }
  })
  let state = await dashboard()
  t.same(state.charted, [blog, home].sort(), 'one series per page, discovered from the data')
  t.same(state.count, { [home]: 6, [blog]: 3 }, 'the count series end at the right numbers')
  await page.locator('input[name="measure"][value="duration"]').check()
  state = await dashboard()
  t.equal(state.measure, 'duration', 'the switch selects the duration sum')
  t.same(state.charted, [blog, home].sort(), 'with a series per page again')
  t.same(state.duration, { [home]: 705, [blog]: 820 })

  // a few seconds of points, so that the screenshot shows lines
  // runs in the page: self-contained
  const fivePoints = () =>
    (globalThis as unknown as { pagestream: { points(kind: string): number } }).pagestream.points('duration') >= 5
  await page.waitForFunction(fivePoints, undefined, { timeout: 15_000 })
  mkdirSync(join(ROOT, 'test-artifacts'), { recursive: true })
  await page.screenshot({ path: join(ROOT, 'test-artifacts', 'dashboard.png') })

  // the service goes away: the page says so, and comes back by itself when it is back
  await analytics.stop('SIGTERM')
  await page.locator('#connection:not([data-state="open"])').waitFor({ timeout: 15_000 })
  t.pass(`connection state shows ${await page.locator('#connection').textContent()}`)
  await startRole(t, 'analytics', { ...env, HTTP_PORT: String(analytics.port) })
  await page.locator('#connection[data-state="open"]').waitFor({ timeout: 45_000 })
  await row(home).locator('.duration').filter({ hasText: /^705$/ }).waitFor({ timeout: 15_000 })
  t.pass('reconnected, and the values are back from R4')

  const violations = console.filter((line) => /Content.Security.Policy|Refused to/i.test(line))
  t.same(violations, [], 'no CSP violation on the console')
  t.same(console.filter((line) => line.startsWith('pageerror')), [], 'no script error')
})
