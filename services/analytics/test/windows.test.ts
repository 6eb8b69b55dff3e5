import t from 'tap'
import { PartitionWindows } from '../src/window-store.js'
import { AnalyticsView } from '../src/view.js'
import { Value } from '@sinclair/typebox/value'
import { ConfigError } from '@pagestream/core'
import { STREAM_TIME_KEY, decodeWindowState, encodeWindowState } from '../src/changelog.js'
import { type WindowSpec, emptyWindow, isClosed, windowSpec, windowStartsFor } from '../src/window-geometry.js'
import { WindowRecordSchema, windowRecord } from '../src/window-record.js'

const tumbling = { sizeMs: 5000, advanceMs: 5000, graceMs: 1000, sliceMs: 1000 }
const hopping = { sizeMs: 10_000, advanceMs: 5000, graceMs: 0, sliceMs: 1000 }
const event = (at: number, user = 'U', duration = 0, name = 'p') => ({
  name, user, date: new Date(at).toISOString(), duration,
})

t.test('window starts: one tumbling window, size/advance hopping windows, oldest first', async (t) => {
  t.same(windowStartsFor(0, tumbling), [0])
  t.same(windowStartsFor(4999, tumbling), [0])
  t.same(windowStartsFor(5000, tumbling), [5000])
  t.same(windowStartsFor(12_000, hopping), [5000, 10_000])
  t.same(windowStartsFor(10_000, hopping), [5000, 10_000])
  t.same(windowStartsFor(2000, { sizeMs: 10_000, advanceMs: 3000, graceMs: 0, sliceMs: 1000 }), [-6000, -3000, 0])
})

t.test('a window closes when stream time minus grace reaches its end', async (t) => {
  t.notOk(isClosed(5000, 5999, tumbling))
  t.ok(isClosed(5000, 6000, tumbling))
})

t.test('window state survives the changelog encoding, user set and slices included', async (t) => {
  const state = {
    page: 'p|1',
    start: 5000,
    end: 10_000,
    count: 3,
    durationSum: 30,
    users: new Set(['a', 'b']),
    longViews: 1,
    sliceMs: 1000,
    sliceCounts: [1, 0, 0, 2, 0],
    sliceDurationSums: [5, 0, 0, 25, 0],
  }
  t.same(decodeWindowState(encodeWindowState(state)), state)
  const record = windowRecord(state, true)
  t.same(record, {
    page: 'p|1',
    windowStart: '1970-01-01T00:00:05.000Z',
    windowEnd: '1970-01-01T00:00:10.000Z',
    count: 3,
    durationSum: 30,
    distinctUsers: 2,
    longViews: 1,
    final: true,
    sliceMs: 1000,
    sliceCounts: [1, 0, 0, 2, 0],
    sliceDurationSums: [5, 0, 0, 25, 0],
  }, 'the R4 value keeps every field it had and adds the slices')
  t.ok(Value.Check(WindowRecordSchema, record))
})

t.test('a changelog value is validated, not cast: ' +
  'one that is not a window state throws, naming the problem', async (t) => {
  const windows = new PartitionWindows(tumbling, 100)
  const value = { page: 'p', start: 0, end: 5000, count: 1, durationSum: 1, users: ['a'], longViews: 0 }
  t.throws(() => { decodeWindowState(JSON.stringify({ ...value, users: 'a' })) }, /not a window state: \/users/)
  t.throws(
    () => { windows.restore('p|0', JSON.stringify({ ...value, count: -1 })) }, /changelog record p\|0: .*\/count/
  )
  t.throws(() => { windows.restore(STREAM_TIME_KEY, 'soon') }, /not a stream time/)
  t.equal(windows.windows.size, 0, 'nothing half restored')
  windows.restore('p|0', JSON.stringify(value))
  t.equal(windows.windows.get('p|0')?.count, 1)
})

t.test('a changelog value or R4 record from before slices reads as one slice: the whole window', async (t) => {
  const old = JSON.stringify({
    page: 'p', start: 5000, end: 10_000, count: 3, durationSum: 30, users: ['a'], longViews: 0,
  })
  const state = decodeWindowState(old)
  t.same([state.sliceMs, state.sliceCounts, state.sliceDurationSums], [5000, [3], [30]])
  const windows = new PartitionWindows(tumbling, 100)
  windows.restore('p|5000', old)
  windows.add(event(9999, 'b', 7))
  t.same(windows.windows.get('p|5000')?.sliceCounts, [4], 'the restored window goes on counting into its one slice')
  t.same(
    windows.pending().updated.map((w) => windowRecord(w, false)).map(
      (r) => [r.count, r.sliceMs, r.sliceCounts, r.sliceDurationSums]
    ),
    [[4, 5000, [4], [37]]]
  )
  const fresh = new PartitionWindows(tumbling, 100)
  fresh.add(event(9999, 'b', 7))
  t.same(fresh.windows.get('p|5000')?.sliceCounts, [0, 0, 0, 0, 1], 'a new window has the configured slices')

  const legacy = {
    page: 'p',
    windowStart: new Date(5000).toISOString(),
    windowEnd: new Date(10_000).toISOString(),
    count: 3,
    durationSum: 30,
    distinctUsers: 1,
    longViews: 0,
    final: true,
  }
  t.ok(Value.Check(WindowRecordSchema, legacy), 'an R4 record without slices is still a window record')
  const view = new AnalyticsView(60_000)
  view.apply(legacy)
  t.same(view.rolling(12_000, 5000, 'count'), { p: 3 }, 'it counts whole while it reaches into the span')
  t.same(view.rolling(14_999, 5000, 'count'), { p: 0 }, 'and not once it is out')
  view.apply({ ...legacy, sliceMs: 1000, sliceCounts: [3], sliceDurationSums: [30] })
  t.same(view.rolling(12_000, 5000, 'count'), { p: 3 },
    'slices that do not fit the window are ignored: one slice again')
})

t.test('partition windows: counting, closing, late events, pending work and restore', async (t) => {
  const windows = new PartitionWindows(tumbling, 100)
  t.same(windows.add(event(1000, 'a', 150)), { missed: 0, counted: 1 })
  windows.add(event(2000, 'a', 50))
  windows.add(event(6500, 'b', 101))
  t.equal(windows.closeExpired(), 1, 'stream time 6.5 s closes [0, 5 s) with 1 s grace')
  let pending = windows.pending()
  t.same(
    pending.closed.map((w) => [w.start, w.count, w.users.size, w.longViews, w.sliceCounts, w.sliceDurationSums]),
    [[0, 2, 1, 1, [0, 1, 1, 0, 0], [0, 150, 50, 0, 0]]]
  )
  t.same(pending.updated.map((w) => w.start), [5000])
  t.equal(pending.streamTime, 6500)
  windows.committed()
  t.notOk(windows.hasPending())
  t.same(windows.add(event(4000)), { missed: 1, counted: 0 }, 'an event for a closed window is late')
  t.notOk(windows.hasPending(), 'and changes nothing')

  const restored = new PartitionWindows(tumbling, 100)
  restored.restore(
    'p|0',
    encodeWindowState({
      ...emptyWindow('p', 0, 5000, 1000),
      count: 1,
      durationSum: 1,
      users: new Set(['x']),
      sliceCounts: [1, 0, 0, 0, 0],
      sliceDurationSums: [1, 0, 0, 0, 0],
    })
  )
  restored.restore(
    'p|5000',
    encodeWindowState({
      ...emptyWindow('p', 5000, 10_000, 1000),
      count: 2,
      durationSum: 2,
      users: new Set(['x']),
      sliceCounts: [0, 2, 0, 0, 0],
      sliceDurationSums: [0, 2, 0, 0, 0],
    })
  )
  restored.restore('p|0', null)
  restored.restore(STREAM_TIME_KEY, '7000')
  t.same([...restored.windows.keys()], ['p|5000'], 'a tombstone removes the window')
  t.equal(restored.streamTime, 7000)
  t.same(restored.add(event(5500, 'y')), { missed: 0, counted: 1 })
  pending = restored.pending()
  t.same(pending.updated.map((w) => [w.count, w.sliceCounts]), [[3, [1, 2, 0, 0, 0]]],
    'restored windows continue counting, slices too')
  t.equal(pending.streamTime, undefined, 'stream time did not move')
})

t.test('stream time never passes the clock: an event dated ahead closes no window that on-time ' +
  'events still arrive for', async (t) => {
  const now = 1_000_000
  const windows = new PartitionWindows(tumbling, 100)
  t.same(windows.add(event(now + 59_000, 'ahead'), now), { missed: 0, counted: 1 },
    'the event dated ahead is counted in its own window')
  t.equal(windows.streamTime, now, 'stream time stops at the clock')
  t.equal(windows.closeExpired(), 0)
  t.same(windows.add(event(now - 1_500, 'on-time'), now + 10), { missed: 0, counted: 1 },
    'an on-time event is not late')
  t.equal(windows.streamTime, now, 'and an older one does not move it back')
  t.same(windows.add(event(now + 4_000, 'later'), now + 4_000), { missed: 0, counted: 1 })
  t.equal(windows.closeExpired(), 1, 'the on-time window closes once the clock passes its end plus grace')
  windows.add(event(now + 6_000), now + 6_000)
  t.equal(windows.closeExpired(), 1, 'and the next one in turn')
  t.same(windows.pending().closed.map((w) => [w.start, w.count]), [[995_000, 1], [1_000_000, 1]],
    'each with its own events')
  t.ok(windows.windows.has(`p|${now + 55_000}`))
})

t.test('closing on the clock: stream time moves just far enough to close the windows whose ' +
  'end plus grace has passed', async (t) => {
  const windows = new PartitionWindows(tumbling, 100)
  windows.add(event(1_000, 'a'))
  windows.add(event(3_000, 'b'))
  windows.committed()
  t.equal(windows.closeOnClock(5_999), 0, 'end 5 s + grace 1 s: not a millisecond early')
  t.equal(windows.streamTime, 3_000, 'and stream time stays where the input left it')
  t.equal(windows.closeOnClock(6_000), 1, '[0, 5 s) closes once the clock reaches 6 s')
  t.equal(windows.streamTime, 6_000)
  windows.committed()
  windows.add(event(7_000, 'c'))
  t.equal(windows.closeOnClock(60_000), 1, 'a clock far ahead closes [5 s, 10 s)')
  t.equal(windows.streamTime, 11_000, 'stream time moved to that window\'s end plus grace, not to the clock')
  t.same(windows.pending().closed.map((w) => [w.start, w.count]), [[5_000, 1]])
  t.equal(windows.pending().streamTime, 11_000, 'the new stream time goes to the changelog')
  t.same(windows.add(event(11_500, 'd')), { missed: 0, counted: 1 }, 'an event after the closed window still counts')
  t.same(windows.add(event(9_000, 'e')), { missed: 1, counted: 0 }, 'an event of the closed window is late')
  const ahead = new PartitionWindows(tumbling, 100)
  ahead.add(event(20_000), 20_000)
  t.equal(ahead.closeOnClock(24_000), 0, 'a window whose end plus grace lies ahead of the clock stays open')
})

t.test('the event time may be given: the processor passes the record timestamp instead of the date', async (t) => {
  const windows = new PartitionWindows(tumbling, 100)
  windows.add(event(1_000), Number.POSITIVE_INFINITY, 7_000)
  t.same([...windows.windows.keys()], ['p|5000'], 'the window of the given time, not of the date')
  t.equal(windows.streamTime, 7_000)
})

t.test('hopping: an event partly late is counted where its windows are still open', async (t) => {
  const windows = new PartitionWindows(hopping, 100)
  windows.add(event(12_000))
  windows.closeExpired()
  t.same(windows.add(event(9500)), { missed: 1, counted: 1 })
})

/** A record of a 5 s window with 1 s slices; durations are 10 per event. */
const record = (page: string, start: number, slices: number[], final = false) => ({
  page,
  windowStart: new Date(start).toISOString(),
  windowEnd: new Date(start + 1000 * slices.length).toISOString(),
  count: slices.reduce((a, b) => a + b, 0),
  durationSum: slices.reduce((a, b) => a + b, 0) * 10,
  distinctUsers: 1,
  longViews: 0,
  final,
  sliceMs: 1000,
  sliceCounts: slices,
  sliceDurationSums: slices.map((n) => n * 10),
})

t.test('view: tiles of the rolling span, totals cut at slice boundaries, zeros for quiet pages, pruning', async (t) => {
  const view = new AnalyticsView(60_000)
  view.apply(record('a', 5000, [1, 0, 0, 0, 1]))
  view.apply(record('a', 10_000, [2, 1, 0, 0, 0]))
  view.apply(record('a', 0, [7, 0, 0, 0, 0]))
  view.apply(record('b', 0, [0, 0, 0, 0, 1]))
  const starts = (page: string, now: number, span: number) => view.tiles(page, now, span).map((tile) => tile.start)
  t.same(starts('a', 12_000, 5000), [10_000, 5000], 'tumbling: the current window and the one before')
  t.same(starts('a', 10_000, 5000), [10_000, 5000], 'on a boundary: the window starting at now, and the one before')
  t.same(starts('a', 14_999, 5000), [10_000], 'the span (9.999 s, 14.999 s] starts in one window')
  t.same(starts('a', 12_000, 30_000), [10_000, 5000, 0], 'no window held before 0 s: no tile')
  t.same(starts('b', 12_000, 30_000), [0], 'a quiet stretch is skipped to the window before it')
  t.same(view.rolling(10_000, 5000, 'count'), { a: 3, b: 0 }, 'at 10 s: [6 s, 10 s], the slice at 5 s is out')
  t.same(view.rolling(10_999, 5000, 'count'), { a: 3, b: 0 })
  t.same(view.rolling(11_000, 5000, 'count'), { a: 4, b: 0 }, 'at 11 s the slice at 11 s comes in')
  t.same(view.rolling(12_000, 5000, 'count'), { a: 4, b: 0 },
    'slices in the span only: no share of the older window is guessed')
  t.same(view.rolling(13_999, 5000, 'count'), { a: 4, b: 0 }, 'the event at 9 s is still inside')
  t.same(view.rolling(14_000, 5000, 'count'), { a: 3, b: 0 }, 'and gone with the slice at 14 s')
  t.same(view.rolling(9000, 5000, 'count'), { a: 2, b: 0 }, 'at 9 s: [5 s, 9 s], the slice at 4 s of b is out')
  t.same(view.rolling(8999, 5000, 'count'), { a: 1, b: 1 }, 'at 8.999 s: [4 s, 8.999 s]')
  t.same(view.rolling(12_000, 30_000, 'durationSum'), { a: 120, b: 10 })
  t.ok(view.apply(record('a', 10_000, [2, 1, 0, 1, 0], true)))
  t.notOk(view.apply(record('a', 10_000, [2, 1, 0, 0, 0], false)), 'an update never replaces the final record')
  t.same(view.rolling(14_000, 5000, 'count'), { a: 4, b: 0 }, 'the final record counts')
  t.same(view.windows('a', 4000, 11_000).map((w) => w.count), [7, 2, 4])
  view.prune(70_000)
  t.same(view.pages(), ['a'], 'b had only old windows')
  t.equal(view.windowCount, 1)

  const hop = new AnalyticsView(60_000)
  const hopping = (view: AnalyticsView, advance: number) => {
    for (let start = 0; start <= 12_000; start += advance) {
      view.apply(
        windowRecord(emptyWindow('h', start, start + 5000, 1000), false)
      )
    }
  }
  hopping(hop, 1000)
  t.same(hop.tiles('h', 12_500, 5000), [{ start: 8000, until: 12_501 }, { start: 3000, until: 8000 }],
    'hopping: tiles that do not overlap, so nothing counts twice, each the oldest window reaching the next')
  const odd = new AnalyticsView(60_000)
  hopping(odd, 2000)
  t.same(odd.tiles('h', 12_500, 5000), [{ start: 8000, until: 12_501 }, { start: 4000, until: 8000 }],
    'a size that is not a multiple of the advance: the older tile is the part of a window before the next one')
})

type Event = ReturnType<typeof event>

/** The processor's windows fed event by event as the clock passes them, and the view of their records. */
function pipeline (spec: WindowSpec) {
  const windows = new PartitionWindows({ ...spec, graceMs: 3_600_000 }, 100)
  // a view without a spec of its own: the geometry comes with the records
  const view = new AnalyticsView(3_600_000)
  return {
    view,
    add (events: Event[]) {
      for (const e of events) windows.add(e)
      for (const window of windows.pending().updated) view.apply(windowRecord(window, false))
      windows.committed()
    },
  }
}

/** Readings of the view while the clock runs from `from` to `to` in `step` ms, events arriving as they happen. */
function readings (spec: WindowSpec, events: Event[], from: number, to: number, step: number, spanMs = 5000): Array<{
  now: number, value: number,
}> {
  const { view, add } = pipeline(spec)
  const queue = [...events].sort((a, b) => Date.parse(a.date) - Date.parse(b.date))
  const result: Array<{ now: number, value: number }> = []
  for (let now = from; now <= to; now += step) {
    const due: Event[] = []
    while (queue.length > 0 && Date.parse(queue[0]!.date) <= now) due.push(queue.shift()!)
    add(due)
    result.push({ now, value: view.rolling(now, spanMs, 'count').p ?? 0 })
  }
  return result
}

const specs: Record<string, WindowSpec> = {
  'tumbling 5 s': { sizeMs: 5000, advanceMs: 5000, graceMs: 0, sliceMs: 1000 },
  'hopping 5 s by 1 s': { sizeMs: 5000, advanceMs: 1000, graceMs: 0, sliceMs: 1000 },
  'hopping 10 s by 5 s': { sizeMs: 10_000, advanceMs: 5000, graceMs: 0, sliceMs: 1000 },
  'hopping 5 s by 2 s': { sizeMs: 5000, advanceMs: 2000, graceMs: 0, sliceMs: 1000 },
  'tumbling 1 s': { sizeMs: 1000, advanceMs: 1000, graceMs: 0, sliceMs: 1000 },
}

t.test('a burst reads its exact size at every moment until it leaves the span, then 0: no decay', async (t) => {
  // 7 events in one instant, 1.5 s before a window boundary and again just after one
  for (const at of [18_500, 20_001, 24_999]) {
    const burst = Array.from({ length: 7 }, (_, i) => event(at, `U${i}`, 10))
    const leaves = Math.floor(at / 1000) * 1000 + 5000
    for (const [name, spec] of Object.entries(specs)) {
      const read = readings(spec, burst, at - 3000, at + 8000, 50)
      const wrong = read.filter(({ now, value }) => value !== (now >= at && now < leaves ? 7 : 0))
      t.same(wrong, [], `${name}, burst at ${at}: 7 from ${at} until ${leaves}, 0 before and after`)
    }
  }
})

t.test('a steady stream reads flat: the same at each phase of every slice, never more than the span holds, ' +
  'never less than one slice fewer', async (t) => {
  // one event every 100 ms, 10 a second; the span holds the current slice and the 4 before it
  const steady = Array.from({ length: 600 }, (_, i) => event(i * 100, `U${i % 7}`, 5))
  const reference = readings(specs['tumbling 5 s']!, steady, 10_000, 50_000, 50)
  for (const { now, value } of reference) {
    const expected = 40 + Math.floor((now % 1000) / 100) + 1
    if (value !== expected) t.fail(`at ${now}: ${value}, expected ${expected}`)
  }
  const byPhase = new Map<number, Set<number>>()
  for (const { now, value } of reference) byPhase.set(now % 1000, (byPhase.get(now % 1000) ?? new Set()).add(value))
  t.ok([...byPhase.values()].every((values) => values.size === 1),
    'one value per phase: no saw-tooth at window boundaries')
  t.ok(reference.every(({ value }) => value >= 41 && value <= 50), 'between 4 s and 5 s worth of events')
  for (const [name, spec] of Object.entries(specs)) {
    t.same(readings(spec, steady, 10_000, 50_000, 50), reference, `${name} reads the same numbers`)
  }
})

t.test('random traffic: every window shape reads exactly the events dated in the span', async (t) => {
  let seed = 42
  const random = () => { seed = (seed * 1103515245 + 12345) % 2 ** 31; return seed / 2 ** 31 }
  const traffic = Array.from(
    { length: 400 }, () => event(Math.floor(random() * 40_000), 'U', Math.floor(random() * 300))
  )
  for (const [name, spec] of Object.entries(specs)) {
    const read = readings(spec, traffic, 0, 45_000, 37)
    const wrong = read.filter(({ now, value }) => {
      const from = Math.floor(now / 1000) * 1000 - 4000
      return value !== traffic.filter((e) => Date.parse(e.date) >= from && Date.parse(e.date) <= now).length
    })
    t.same(wrong, [], `${name}: exact at every reading`)
  }
})

t.test('window spec: the slice must divide size and advance, the spans must be whole slices', async (t) => {
  const defaults = {
    WINDOW_SIZE_MS: 5000,
    WINDOW_ADVANCE_MS: 0,
    WINDOW_GRACE_MS: 2000,
    WINDOW_SLICE_MS: 1000,
    ROLLING_COUNT_SPAN_MS: 5000,
    ROLLING_DURATION_SPAN_MS: 30_000,
  }
  t.same(windowSpec(defaults), { sizeMs: 5000, advanceMs: 5000, graceMs: 2000, sliceMs: 1000 })
  t.same(
    windowSpec({ ...defaults, WINDOW_SIZE_MS: 10_000, WINDOW_ADVANCE_MS: 2000 }),
    { sizeMs: 10_000, advanceMs: 2000, graceMs: 2000, sliceMs: 1000 }
  )
  const problems = (settings: Partial<typeof defaults>): string[] => {
    try {
      windowSpec({ ...defaults, ...settings })
      return []
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err
      return err.problems
    }
  }
  t.same(
    problems({ WINDOW_SIZE_MS: 1500 }),
    ['WINDOW_SLICE_MS: must divide WINDOW_SIZE_MS (1500) and the window advance (1500), e.g. 750 (got 1000)']
  )
  t.match(problems({ WINDOW_ADVANCE_MS: 2500 }), [/^WINDOW_SLICE_MS: must divide .* e\.g\. 625 \(got 1000\)$/])
  t.match(problems({ WINDOW_ADVANCE_MS: 6000 }), [/^WINDOW_ADVANCE_MS: must not exceed WINDOW_SIZE_MS/])
  t.match(
    problems({ WINDOW_SIZE_MS: 3_600_000, WINDOW_SLICE_MS: 1000 }),
    [/^WINDOW_SLICE_MS: at most 1000 slices per window, so at least 3600/]
  )
  t.same(problems({ WINDOW_SIZE_MS: 3_600_000, WINDOW_SLICE_MS: 5000 }), [])
  t.match(
    problems({ WINDOW_SLICE_MS: 2000, WINDOW_SIZE_MS: 10_000 }),
    [/^ROLLING_COUNT_SPAN_MS: must be a multiple of WINDOW_SLICE_MS \(2000\)/]
  )
  t.match(problems({ ROLLING_DURATION_SPAN_MS: 30_500 }), [/^ROLLING_DURATION_SPAN_MS: must be a multiple/])
})
