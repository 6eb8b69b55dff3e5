import { slicesOf } from './window-geometry.js'
import type { WindowRecord } from './window-record.js'

interface HeldWindow {
  /** What the view shows: the latest update, the final, or the sum of several writers' finals. */
  record: WindowRecord
  start: number
  end: number
  /** The record's sub-totals, or one slice (the whole window) for a record written before slices existed. */
  sliceMs: number
  /** False for that one slice: it counts whole while any of it lies in the span. */
  sliced: boolean
  slices: Record<Measure, number[]>
  /** Final records received, one per writer. */
  finals: WindowRecord[]
}

export type Measure = 'count' | 'durationSum'

/** A tile of a rolling span: the part [start, until) of the window starting at `start`. */
export interface Tile { start: number, until: number }

/** Called when a window got final records from more than one writer and the view summed them. */
export type CombinedFinalsListener = (page: string, windowStart: string, finals: number) => void

/** Finals that report the same totals: the same record read twice, not a second writer. */
function sameTotals (a: WindowRecord, b: WindowRecord): boolean {
  return a.count === b.count && a.durationSum === b.durationSum &&
    a.distinctUsers === b.distinctUsers && a.longViews === b.longViews
}

/**
 * The sum of the finals of several writers: each counted other events (a page-window split over
 * input partitions), so counts, sums and slices add up; distinct users may overlap and is an upper bound.
 */
function combineFinals (finals: WindowRecord[], start: number, end: number): WindowRecord {
  const parts = finals.map((record) => slicesOf(record, start, end))
  const first = parts[0]!
  const aligned = parts.every((part) =>
    part.sliceMs === first.sliceMs && part.sliceCounts.length === first.sliceCounts.length)
  const sum = (pick: (record: WindowRecord) => number) => finals.reduce((total, record) => total + pick(record), 0)
  const sumSlices = (pick: (part: typeof first) => number[]) =>
    first.sliceCounts.map((_, i) => parts.reduce((total, part) => total + pick(part)[i]!, 0))
  return {
    ...finals[0]!,
    count: sum((r) => r.count),
    durationSum: sum((r) => r.durationSum),
    distinctUsers: sum((r) => r.distinctUsers),
    longViews: sum((r) => r.longViews),
    final: true,
    // slices of another length cannot be added slice by slice: the window becomes one slice
    sliceMs: aligned ? first.sliceMs : end - start,
    sliceCounts: aligned ? sumSlices((part) => part.sliceCounts) : [sum((r) => r.count)],
    sliceDurationSums: aligned ? sumSlices((part) => part.sliceDurationSums) : [sum((r) => r.durationSum)],
    combinedFinals: finals.length,
  }
}

/**
 * The latest record of every (page, window) read from R4, for every page, so any replica can
 * answer for all of them. The window geometry (start, end, slices) comes from the records, not from
 * this replica's window settings: a view-only replica configured otherwise still reads every window.
 * Windows older than the retention are pruned, and a page whose windows are all pruned is forgotten.
 * Each page-window has one writer when the input is repartitioned by page; should a second writer's
 * final arrive anyway (an input wrongly declared keyed by page), the finals are summed, never replaced,
 * and reported to `onCombinedFinals`.
 */
export class AnalyticsView {
  /** page -> `start/end` -> window: keyed by both, so windows of two specs (a spec changed) never collide. */
  readonly #pages = new Map<string, Map<string, HeldWindow>>()

  constructor (
    readonly retentionMs: number,
    private readonly onCombinedFinals: CombinedFinalsListener = () => {}
  ) {}

  /** Keeps the record unless the view already holds a final of that window; a second writer's final is added. */
  apply (record: WindowRecord): boolean {
    const start = Date.parse(record.windowStart)
    const end = Date.parse(record.windowEnd)
    if (!Number.isFinite(start) || !Number.isFinite(end)) return false
    let windows = this.#pages.get(record.page)
    if (windows === undefined) {
      windows = new Map()
      this.#pages.set(record.page, windows)
    }
    const key = `${start}/${end}`
    const held = windows.get(key)
    let finals: WindowRecord[] = []
    let shown = record
    if (held !== undefined && held.finals.length > 0) {
      if (!record.final) return false
      const known = held.finals.findIndex((final) => sameTotals(final, record))
      finals = known >= 0 ? held.finals.map((final, i) => (i === known ? record : final)) : [...held.finals, record]
      if (finals.length > 1) shown = combineFinals(finals, start, end)
      if (known < 0) this.onCombinedFinals(record.page, record.windowStart, finals.length)
    } else if (record.final) {
      finals = [record]
    }
    const { sliceMs, sliceCounts, sliceDurationSums } = slicesOf(shown, start, end)
    const slices = { count: sliceCounts, durationSum: sliceDurationSums }
    // slicesOf hands the record's own arrays back when they fit its window
    const sliced = sliceCounts === shown.sliceCounts
    windows.set(key, { record: shown, start, end, sliceMs, sliced, slices, finals })
    return true
  }

  pages (): string[] {
    return [...this.#pages.keys()].sort()
  }

  /**
   * Windows of the page that tile the span (now - spanMs, now] without overlapping, newest first:
   * for each tile, the oldest held window that still reaches the start of the tile after it, taking
   * its part up to that start. Where no held window reaches, none had an event there: the tiling
   * goes on from the newest end before it. Whole windows with tumbling windows, or hopping ones whose
   * size is a multiple of the advance.
   */
  tiles (page: string, now: number, spanMs: number): Tile[] {
    return this.#tiles(page, now, spanMs).map(({ held, until }) => ({ start: held.start, until }))
  }

  #tiles (page: string, now: number, spanMs: number): Array<{ held: HeldWindow, until: number }> {
    const windows = [...(this.#pages.get(page)?.values() ?? [])].sort((a, b) => a.start - b.start)
    const tiles: Array<{ held: HeldWindow, until: number }> = []
    let until = now + 1
    while (until > now - spanMs + 1) {
      const held = windows.find((window) => window.start < until && window.end >= until)
      if (held !== undefined) {
        tiles.push({ held, until })
        until = held.start
        continue
      }
      const gapStart = Math.max(...windows.filter((window) => window.end < until).map((window) => window.end))
      if (!Number.isFinite(gapStart)) break
      until = gapStart
    }
    return tiles
  }

  /**
   * page -> the measure over the span (now - spanMs, now]: per tile, the sum of the window's slices
   * that lie in the tile and start in the span: the slice holding now and the spanMs / sliceMs - 1
   * before it, for slices that divide the span. Slices sit on multiples of the slice length, so a
   * slice is either inside or outside: the total is exact to the slice, with no guess about how
   * events spread inside a window. A burst reads its full size until it leaves the span, then 0. A
   * record without slices is one slice and counts whole while it reaches into the span. Every known
   * page is present, 0 when quiet.
   */
  rolling (now: number, spanMs: number, measure: Measure): Record<string, number> {
    const totals: Record<string, number> = {}
    for (const page of this.pages()) {
      let total = 0
      for (const { held, until } of this.#tiles(page, now, spanMs)) {
        total += sliceSum(held, measure, now - spanMs, until)
      }
      totals[page] = total
    }
    return totals
  }

  /** Windows of a page that overlap [from, to), oldest first. */
  windows (page: string, from: number, to: number): WindowRecord[] {
    const windows = this.#pages.get(page)
    if (windows === undefined) return []
    return [...windows.values()]
      .filter((held) => held.start < to && held.end > from)
      .sort((a, b) => a.start - b.start)
      .map((held) => held.record)
  }

  prune (now: number): void {
    const horizon = now - this.retentionMs
    for (const [page, windows] of this.#pages) {
      for (const [key, held] of windows) if (held.end <= horizon) windows.delete(key)
      if (windows.size === 0) this.#pages.delete(page)
    }
  }

  get windowCount (): number {
    let count = 0
    for (const windows of this.#pages.values()) count += windows.size
    return count
  }
}

/**
 * Sum of the window's slices that start after `after` and before `before` (only those are visited);
 * an unsliced window's one slice counts while it ends after `after` + 1.
 */
function sliceSum (held: HeldWindow, measure: Measure, after: number, before: number): number {
  const values = held.slices[measure]
  const from = held.sliced ? after : after - held.sliceMs + 1
  const first = Math.max(0, Math.floor((from - held.start) / held.sliceMs) + 1)
  const last = Math.min(values.length - 1, Math.ceil((before - held.start) / held.sliceMs) - 1)
  let sum = 0
  for (let i = first; i <= last; i += 1) sum += values[i]!
  return sum
}
