import type { WindowRecord } from './windows.js'

interface HeldWindow { record: WindowRecord, start: number, end: number }

export type Measure = 'count' | 'durationSum'

/**
 * The latest record of every (page, window) read from R4, for every page, so any replica can
 * answer for all of them. Windows older than the retention are pruned, and a page whose windows
 * are all pruned is forgotten.
 */
export class AnalyticsView {
  readonly #pages = new Map<string, Map<number, HeldWindow>>()

  constructor (readonly spec: { sizeMs: number, advanceMs: number }, readonly retentionMs: number) {}

  /** Keeps the record unless the view already holds the final one of that window. */
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
    if (held?.record.final === true && !record.final) return false
    windows.set(start, { record, start, end })
    return true
  }

  pages (): string[] {
    return [...this.#pages.keys()].sort()
  }

  /**
   * Starts of the windows that tile the span (now - spanMs, now]: the newest window holding `now`,
   * then the windows before it, each ending where the next starts, back to the first that still
   * ends after now - spanMs. With hopping windows the tiles do not overlap, so nothing counts twice.
   */
  tileStarts (now: number, spanMs: number): number[] {
    const { sizeMs, advanceMs } = this.spec
    const starts: number[] = []
    for (let start = Math.floor(now / advanceMs) * advanceMs; start + sizeMs > now - spanMs; start -= sizeMs) starts.push(start)
    return starts
  }

  /**
   * How much of a tile's value belongs to (now - spanMs, now]: the share of its elapsed part
   * (up to now) that lies in the span. 1 for every tile but the oldest, which usually reaches back
   * before the span; its events are taken as spread evenly over it.
   */
  tileWeight (start: number, now: number, spanMs: number): number {
    const elapsedEnd = Math.min(start + this.spec.sizeMs, now)
    if (elapsedEnd <= start) return 1
    const inside = elapsedEnd - Math.max(start, now - spanMs)
    return Math.max(0, Math.min(1, inside / (elapsedEnd - start)))
  }

  /**
   * page -> the measure over the last spanMs, rounded to an integer: the tiles of the span summed,
   * the oldest weighted by the part of it inside the span. So the total glides instead of jumping
   * at window boundaries (a steady rate gives a flat line), is exact whenever the span starts on a
   * window boundary, and otherwise errs by at most the unevenness within one window; smaller
   * windows (WINDOW_SIZE_MS) make it finer. Every known page is present, 0 when quiet.
   */
  rolling (now: number, spanMs: number, measure: Measure): Record<string, number> {
    const tiles = this.tileStarts(now, spanMs).map((start) => ({ start, weight: this.tileWeight(start, now, spanMs) }))
    const totals: Record<string, number> = {}
    for (const page of this.pages()) {
      const windows = this.#pages.get(page)!
      let total = 0
      for (const { start, weight } of tiles) total += (windows.get(start)?.record[measure] ?? 0) * weight
      totals[page] = Math.round(total)
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
