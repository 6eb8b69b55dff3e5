import t from 'tap'
import { PartitionWindows, STREAM_TIME_KEY } from '../src/window-store.js'
import { AnalyticsView } from '../src/view.js'
import { SerialQueue } from '../src/serial-queue.js'
import { decodeWindowState, encodeWindowState, isClosed, windowRecord, windowStartsFor } from '../src/windows.js'

const tumbling = { sizeMs: 5000, advanceMs: 5000, graceMs: 1000 }
const hopping = { sizeMs: 10_000, advanceMs: 5000, graceMs: 0 }
const event = (at: number, user = 'U', duration = 0, name = 'p') => ({ name, user, date: new Date(at).toISOString(), duration })

t.test('window starts: one tumbling window, size/advance hopping windows, oldest first', async (t) => {
  t.same(windowStartsFor(0, tumbling), [0])
  t.same(windowStartsFor(4999, tumbling), [0])
  t.same(windowStartsFor(5000, tumbling), [5000])
  t.same(windowStartsFor(12_000, hopping), [5000, 10_000])
  t.same(windowStartsFor(10_000, hopping), [5000, 10_000])
  t.same(windowStartsFor(2000, { sizeMs: 10_000, advanceMs: 3000, graceMs: 0 }), [-6000, -3000, 0])
})

t.test('a window closes when stream time minus grace reaches its end', async (t) => {
  t.notOk(isClosed(5000, 5999, tumbling))
  t.ok(isClosed(5000, 6000, tumbling))
})

t.test('window state survives the changelog encoding, user set included', async (t) => {
  const state = { page: 'p|1', start: 5000, end: 10_000, count: 3, durationSum: 30, users: new Set(['a', 'b']), longViews: 1 }
  t.same(decodeWindowState(encodeWindowState(state)), state)
  t.same(windowRecord(state, true), { page: 'p|1', windowStart: '1970-01-01T00:00:05.000Z', windowEnd: '1970-01-01T00:00:10.000Z', count: 3, durationSum: 30, distinctUsers: 2, longViews: 1, final: true })
})

t.test('partition windows: counting, closing, late events, pending work and restore', async (t) => {
  const windows = new PartitionWindows(tumbling, 100)
  t.same(windows.add(event(1000, 'a', 150)), { missed: 0, counted: 1 })
  windows.add(event(2000, 'a', 50))
  windows.add(event(6500, 'b', 101))
  t.equal(windows.closeExpired(), 1, 'stream time 6.5 s closes [0, 5 s) with 1 s grace')
  let pending = windows.pending()
  t.same(pending.closed.map((w) => [w.start, w.count, w.users.size, w.longViews]), [[0, 2, 1, 1]])
  t.same(pending.updated.map((w) => w.start), [5000])
  t.equal(pending.streamTime, 6500)
  windows.committed()
  t.notOk(windows.hasPending())
  t.same(windows.add(event(4000)), { missed: 1, counted: 0 }, 'an event for a closed window is late')
  t.notOk(windows.hasPending(), 'and changes nothing')

  const restored = new PartitionWindows(tumbling, 100)
  restored.restore('p|0', encodeWindowState({ page: 'p', start: 0, end: 5000, count: 1, durationSum: 1, users: new Set(['x']), longViews: 0 }))
  restored.restore('p|5000', encodeWindowState({ page: 'p', start: 5000, end: 10_000, count: 2, durationSum: 2, users: new Set(['x']), longViews: 0 }))
  restored.restore('p|0', null)
  restored.restore(STREAM_TIME_KEY, '7000')
  t.same([...restored.windows.keys()], ['p|5000'], 'a tombstone removes the window')
  t.equal(restored.streamTime, 7000)
  t.same(restored.add(event(5500, 'y')), { missed: 0, counted: 1 })
  pending = restored.pending()
  t.same(pending.updated.map((w) => w.count), [3], 'restored windows continue counting')
  t.equal(pending.streamTime, undefined, 'stream time did not move')
})

t.test('hopping: an event partly late is counted where its windows are still open', async (t) => {
  const windows = new PartitionWindows(hopping, 100)
  windows.add(event(12_000))
  windows.closeExpired()
  t.same(windows.add(event(9500)), { missed: 1, counted: 1 })
})

const record = (page: string, start: number, count: number, final = false, size = 5000) => ({
  page, windowStart: new Date(start).toISOString(), windowEnd: new Date(start + size).toISOString(), count, durationSum: count * 10, distinctUsers: 1, longViews: 0, final,
})

t.test('view: tiles of the rolling span, weighted totals, zeros for quiet pages, pruning', async (t) => {
  const view = new AnalyticsView({ sizeMs: 5000, advanceMs: 5000 }, 60_000)
  t.same(view.tileStarts(12_000, 5000), [10_000, 5000], 'tumbling: the current window and the one before')
  t.same(view.tileStarts(10_000, 5000), [10_000, 5000], 'on a boundary: the window starting at now, and the one before for (now - 5 s, now)')
  t.same(view.tileStarts(12_000, 30_000), [10_000, 5000, 0, -5000, -10_000, -15_000, -20_000])
  view.apply(record('a', 5000, 2))
  view.apply(record('a', 10_000, 3))
  view.apply(record('a', 0, 7))
  view.apply(record('b', 0, 1))
  t.same(view.rolling(10_000, 5000, 'count'), { a: 5, b: 0 }, 'a span starting on a boundary: exact sums')
  t.equal(view.tileWeight(5000, 12_000, 5000), 0.6, 'the oldest tile counts for its part inside the span')
  t.same(view.rolling(12_000, 5000, 'count'), { a: 4, b: 0 }, '3 + 2 x 0.6, rounded')
  t.same(view.rolling(14_999, 5000, 'count'), { a: 3, b: 0 }, 'the older window has all but left the span')
  t.same(view.rolling(12_000, 30_000, 'durationSum'), { a: 120, b: 10 })
  t.ok(view.apply(record('a', 10_000, 4, true)))
  t.notOk(view.apply(record('a', 10_000, 3, false)), 'an update never replaces the final record')
  t.same(view.windows('a', 4000, 11_000).map((w) => w.count), [7, 2, 4])
  view.prune(70_000)
  t.same(view.pages(), ['a'], 'b had only old windows')
  t.equal(view.windowCount, 1)

  const hop = new AnalyticsView({ sizeMs: 5000, advanceMs: 1000 }, 60_000)
  t.same(hop.tileStarts(12_500, 5000), [12_000, 7000], 'hopping: tiles that do not overlap, so nothing counts twice')
  t.equal(hop.tileWeight(12_000, 12_500, 5000), 1, 'the newest tile counts up to now')
  t.equal(hop.tileWeight(7000, 12_500, 5000), 0.9)

  // a steady rate gives a flat line: one event every 500 ms, read all through a window and across its end
  const steady = new AnalyticsView({ sizeMs: 5000, advanceMs: 5000 }, 60_000)
  const readings = [20_000, 21_000, 22_500, 24_999, 25_000, 26_000].map((now) => {
    for (let start = 0; start <= now; start += 5000) steady.apply(record('s', start, Math.min(10, Math.floor((now - start) / 500) + 1)))
    return steady.rolling(now, 5000, 'count').s ?? 0
  })
  t.ok(readings.every((reading) => Math.abs(reading - 10) <= 1), `no saw-tooth at window boundaries: ${readings.join(', ')}`)
})

t.test('the serial queue runs tasks one at a time, in order, past failures', async (t) => {
  const queue = new SerialQueue()
  const order: string[] = []
  const slow = queue.run(async () => { await new Promise((resolve) => setTimeout(resolve, 20)); order.push('slow') })
  const failing = queue.run(() => { throw new Error('boom') })
  const fast = queue.run(() => { order.push('fast'); return 1 })
  await slow
  await t.rejects(failing, /boom/)
  t.equal(await fast, 1)
  t.same(order, ['slow', 'fast'])
})
