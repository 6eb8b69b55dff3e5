import t from 'tap'
import { parsePageEvent } from '@pagestream/core'
import { type RunningRole, deleteTopics, readTopic, startRole, uniqueName, waitFor } from '@pagestream/test-kit'
import type { SupplyStatus } from '../src/supply-loop.js'

async function status (
  supplier: RunningRole, method = 'GET', path = '/supplier', body?: unknown
): Promise<SupplyStatus> {
  const response = await fetch(`${supplier.url}${path}`, {
    method,
    headers: body === undefined ? {} : { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  })
  return await response.json() as SupplyStatus
}

/** The status once a paused supplier's last sends were answered (no change over 300 ms). */
function settledStatus (supplier: RunningRole): Promise<SupplyStatus> {
  return waitFor('in-flight sends to settle', async () => {
    const before = await status(supplier)
    await new Promise((resolve) => setTimeout(resolve, 300))
    const after = await status(supplier)
    return before.sent === after.sent ? after : undefined
  })
}

/** Events per second acknowledged over a stretch of the supplier's own clock (HTTP delays do not count). */
async function measureRate (supplier: RunningRole, seconds: number): Promise<number> {
  const first = await status(supplier)
  const started = performance.now()
  await waitFor(`${seconds}s of supply`, () => performance.now() - started >= seconds * 1000, seconds * 1000 + 2000)
  const last = await status(supplier)
  return (last.sent - first.sent) / ((last.at - first.at) / 1000)
}

t.test('supplies at the configured rate, pauses, resumes and re-rates', async (t) => {
  const topic = uniqueName('supp-r2')
  t.teardown(() => deleteTopics([topic]))
  const supplier = await startRole(t, 'supplier', {
    SUPPLIER_TOPIC: topic, SUPPLIER_INTERVAL_MS: '50', SUPPLIER_PAGES: 'P1,P2,P3',
  })
  await waitFor('the first events', async () => (await status(supplier)).sent >= 10)

  const rate = await measureRate(supplier, 4)
  t.ok(Math.abs(rate - 20) <= 2, `about 20 events/s at 50 ms: measured ${rate.toFixed(2)}/s`)

  const paused = await status(supplier, 'POST', '/supplier/pause')
  t.equal(paused.running, false)
  const settled = await settledStatus(supplier)
  const stillPaused = await measureRate(supplier, 1)
  t.equal(stillPaused, 0, 'no events while paused')

  t.equal((await status(supplier, 'POST', '/supplier/resume')).running, true)
  const faster = await status(supplier, 'PUT', '/supplier/rate', { intervalMs: 25 })
  t.equal(faster.intervalMs, 25)
  await waitFor('supply to resume', async () => (await status(supplier)).sent > settled.sent + 5)
  const newRate = await measureRate(supplier, 4)
  t.ok(Math.abs(newRate - 40) <= 4, `about 40 events/s at 25 ms: measured ${newRate.toFixed(2)}/s`)

  const refused = await fetch(`${supplier.url}/supplier/rate`, {
    method: 'PUT', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ intervalMs: 0 }),
  })
  t.equal(refused.status, 400)
  t.match(await refused.json(), { message: /body.intervalMs must be milliseconds between events/ })

  await status(supplier, 'POST', '/supplier/pause')
  const final = await settledStatus(supplier)
  t.equal(await supplier.stop('SIGTERM'), 0)
  t.ok(supplier.logs().some((l) => l.msg === 'stopping' && l.signal === 'SIGTERM'), 'stopped on SIGTERM')
  const sent = await readTopic(topic, { count: final.sent })
  t.equal(sent.length, final.sent, `the topic holds exactly the ${final.sent} acknowledged events`)
  t.equal(final.failed, 0)
  t.equal(final.skipped, 0, 'the loop never fell a second behind')
  for (const record of sent.slice(0, 50)) {
    const event = parsePageEvent(JSON.parse(record.value ?? ''))
    t.equal(record.key, event.name)
    t.ok(['P1', 'P2', 'P3'].includes(event.name) && ['U1', 'U2'].includes(event.user))
  }
})
