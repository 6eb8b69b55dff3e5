import type { PageEvent } from '@pagestream/core'
import { eventTime } from '@pagestream/core'
import { decodeChangelogRecord, windowKey } from './changelog.js'
import {
  type WindowSpec, type WindowState, emptyWindow, isClosed, sliceIndex, windowStartsFor,
} from './window-geometry.js'

export interface AddResult {
  /** Windows of the event that had already closed: when > 0 the event is late for them. */
  missed: number
  counted: number
}

/**
 * The windows of one input partition: open windows, stream time, and what changed since the
 * last commit. Pure logic; the processor commits what `pending()` lists and then calls `committed()`.
 */
export class PartitionWindows {
  streamTime = Number.NEGATIVE_INFINITY
  readonly windows = new Map<string, WindowState>()
  #dirty = new Set<string>()
  #closed: WindowState[] = []
  #streamTimeChanged = false

  constructor (readonly spec: WindowSpec, readonly longViewThresholdMs: number) {}

  /**
   * Counts an event into each of its windows that is still open. Stream time moves first, as in
   * Kafka Streams, so an event is only late against what came before it plus the grace period.
   * It moves to the event's time but never past `clock` (the processor's wall clock): an event
   * dated ahead (a client clock that runs fast) is counted in its own windows, but cannot close
   * the windows that on-time events are still arriving for. `time` is the event time: the event's
   * date by default, or what the processor takes instead (the record timestamp).
   */
  add (event: PageEvent, clock = Number.POSITIVE_INFINITY, time = eventTime(event)): AddResult {
    const advanced = Math.min(time, clock)
    if (advanced > this.streamTime) {
      this.streamTime = advanced
      this.#streamTimeChanged = true
    }
    let missed = 0
    let counted = 0
    for (const start of windowStartsFor(time, this.spec)) {
      const end = start + this.spec.sizeMs
      if (isClosed(end, this.streamTime, this.spec)) {
        missed += 1
        continue
      }
      const key = windowKey(event.name, start)
      let window = this.windows.get(key)
      if (window === undefined) {
        window = emptyWindow(event.name, start, end, this.spec.sliceMs)
        this.windows.set(key, window)
      }
      window.count += 1
      window.durationSum += event.duration
      // the window's own slice length: one restored from an older changelog has a single slice
      const slice = sliceIndex(window, time)
      window.sliceCounts[slice]! += 1
      window.sliceDurationSums[slice]! += event.duration
      window.users.add(event.user)
      if (event.duration > this.longViewThresholdMs) window.longViews += 1
      this.#dirty.add(key)
      counted += 1
    }
    return { missed, counted }
  }

  /** Moves every window that stream time has closed out of the open set, to be sent as final. */
  closeExpired (): number {
    let closed = 0
    for (const [key, window] of this.windows) {
      if (!isClosed(window.end, this.streamTime, this.spec)) continue
      this.windows.delete(key)
      this.#dirty.delete(key)
      this.#closed.push(window)
      closed += 1
    }
    return closed
  }

  /**
   * For a partition without input: moves stream time just far enough to close every window whose
   * end plus grace lies before `clock` (never past the clock), then closes them like closeExpired.
   */
  closeOnClock (clock: number): number {
    let target = this.streamTime
    for (const window of this.windows.values()) {
      const closesAt = window.end + this.spec.graceMs
      if (closesAt <= clock && closesAt > target) target = closesAt
    }
    if (target > this.streamTime) {
      this.streamTime = target
      this.#streamTimeChanged = true
    }
    return this.closeExpired()
  }

  /** Applies one changelog record (null value: the window was pruned); throws for one that is not valid. */
  restore (key: string, value: string | null): void {
    const entry = decodeChangelogRecord(key, value)
    if (entry?.kind === 'stream time') this.streamTime = entry.streamTime
    else if (entry?.kind === 'pruned') this.windows.delete(entry.key)
    else if (entry?.kind === 'window') this.windows.set(entry.key, entry.window)
  }

  hasPending (): boolean {
    return this.#dirty.size > 0 || this.#closed.length > 0 || this.#streamTimeChanged
  }

  /** What the next transaction must carry: updates of open windows, finals, and stream time. */
  pending (): { updated: WindowState[], closed: WindowState[], streamTime: number | undefined } {
    const updated: WindowState[] = []
    for (const key of this.#dirty) {
      const window = this.windows.get(key)
      if (window !== undefined) updated.push(window)
    }
    return { updated, closed: this.#closed, streamTime: this.#streamTimeChanged ? this.streamTime : undefined }
  }

  /** The transaction that carried `pending()` committed: closed windows are gone for good. */
  committed (): void {
    this.#dirty.clear()
    this.#closed = []
    this.#streamTimeChanged = false
  }
}
