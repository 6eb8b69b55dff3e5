import { slicesOf } from './window-geometry.js'
import type { WindowRecord } from './window-record.js'

interface HeldWindow {
  /** What the view shows: the latest update, the final, or the sum of several writers' finals. */
  record: WindowRecord
  start: number
  end: number
  /** The record's sub-totals, or one slice (the whole window) for a record written before slices existed. */
  sliceMs: number
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
 * answer for all of them. Windows older than the retention are pruned, and a page whose windows
 * are all pruned is forgotten. Each page-window has one writer when the input is repartitioned by
 * page; should a second writer's final arrive anyway (an input wrongly declared keyed by page), the
 * finals are summed, never replaced, and reported to `onCombinedFinals`.
 */
export class AnalyticsView {
  readonly #pages = new Map<string, Map<number, HeldWindow>>()

  constructor (
    readonly spec: { sizeMs: number, advanceMs: number, sliceMs: number },
    readonly retentionMs: number,
    private readonly onCombinedFinals: CombinedFinalsListener = () => {},
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
    const held = windows.get(start)
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
    windows.set(start, { record: shown, start, end, sliceMs, slices, finals })
    return true
  }

  pages (): string[] {
    return [...this.#pages.keys()].sort()
  }

  /**
   * First instant of the rolling span at `now`: the slice holding `now` and the spanMs / sliceMs - 1
   * slices before it make up the span, so it holds the events dated in [spanStart, now].
   */
  spanStart (now: number, spanMs: number): number {
    const { sliceMs } = this.spec
    return Math.floor(now / sliceMs) * sliceMs - spanMs + sliceMs
  }

  /**
   * Windows that tile the span without overlapping: the newest window holding `now`, then, for
   * each tile, the oldest window that still reaches the start of the tile after it, taking the part
   * of it up to that start; back to the first tile that reaches into the span. With tumbling windows,
   * or hopping ones whose size is a multiple of the advance, every tile but the newest is a whole window.
   */
  tiles (now: number, spanMs: number): Tile[] {
    const { sizeMs, advanceMs } = this.spec
    const from = this.spanStart(now, spanMs)
    let start = Math.floor(now / advanceMs) * advanceMs
    const tiles: Tile[] = [{ start, until: start + sizeMs }]
    while (start > from) {
      const until = start
      start = Math.ceil((until - sizeMs) / advanceMs) * advanceMs
      tiles.push({ start, until })
    }
    return tiles
  }

  tileStarts (now: number, spanMs: number): number[] {
    return this.tiles(now, spanMs).map((tile) => tile.start)
  }

  /**
   * page -> the measure over the span [spanStart, now]: per tile, the sum of the window's slices
   * that lie in the tile and in the span. Slices sit on multiples of the slice length, and so does
   * the span start, so a slice is either inside or outside: the total is exact to the slice, with
   * no guess about how events spread inside a window. A burst reads its full size until it leaves
   * the span, then 0. A record without slices is one slice and counts whole while it reaches into
   * the span. Every known page is present, 0 when quiet.
   */
  rolling (now: number, spanMs: number, measure: Measure): Record<string, number> {
    const from = this.spanStart(now, spanMs)
    const tiles = this.tiles(now, spanMs)
    const totals: Record<string, number> = {}
    for (const page of this.pages()) {
      const windows = this.#pages.get(page)!
      let total = 0
      for (const tile of tiles) {
        const held = windows.get(tile.start)
        if (held !== undefined) total += sliceSum(held, measure, Math.max(from, tile.start), Math.min(now + 1, tile.until))
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
      for (const [start, held] of windows) if (held.end <= horizon) windows.delete(start)
      if (windows.size === 0) this.#pages.delete(page)
    }
  }

  get windowCount (): number {
    let count = 0
    for (const windows of this.#pages.values()) count += windows.size
    return count
  }
}

/** Sum of the window's slices that start before `to` and end after `from` (only those are visited). */
function sliceSum (held: HeldWindow, measure: Measure, from: number, to: number): number {
  const values = held.slices[measure]
  const first = Math.max(0, Math.floor((from - held.start) / held.sliceMs))
  const last = Math.min(values.length - 1, Math.ceil((to - held.start) / held.sliceMs) - 1)
  let sum = 0
  for (let i = first; i <= last; i += 1) sum += values[i]!
  return sum
}
