import { Type, type Static } from '@sinclair/typebox'
import { ConfigError } from '@pagestream/core'

/**
 * How event time is cut into windows: tumbling when advance equals size, hopping when it is smaller.
 * Every window also keeps sub-totals per slice of `sliceMs` (which divides size and advance, so
 * slices sit on absolute multiples of `sliceMs`): the view cuts rolling spans at slice boundaries.
 */
export interface WindowSpec {
  sizeMs: number
  advanceMs: number
  graceMs: number
  sliceMs: number
}

/** Where event time comes from: the PageEvent's `date`, or the record timestamp (what Kafka Streams windows by). */
export const TimeSourceSchema = Type.Union([Type.Literal('date'), Type.Literal('timestamp')], {
  default: 'date',
  description: 'event time of a record: date (the PageEvent field) or timestamp ' +
    '(the Kafka record timestamp, as the lab\'s Kafka Streams job)',
})
export type TimeSource = Static<typeof TimeSourceSchema>

/** Slices per window at most: the sub-totals are two fixed arrays of this length per window. */
export const MAX_SLICES_PER_WINDOW = 1000

export interface WindowSettings {
  WINDOW_SIZE_MS: number
  WINDOW_ADVANCE_MS: number
  WINDOW_GRACE_MS: number
  WINDOW_SLICE_MS: number
  ROLLING_COUNT_SPAN_MS: number
  ROLLING_DURATION_SPAN_MS: number
}

function gcd (a: number, b: number): number {
  return b === 0 ? a : gcd(b, a % b)
}

/** The longest slice that fits size and advance and is not longer than `wanted`. */
function fittingSlice (sizeMs: number, advanceMs: number, wanted: number): number {
  const common = gcd(sizeMs, advanceMs)
  let best = 1
  for (let d = 1; d * d <= common; d += 1) {
    if (common % d !== 0) continue
    for (const divisor of [d, common / d]) if (divisor <= wanted && divisor > best) best = divisor
  }
  return best
}

/**
 * The window spec from the settings, or a ConfigError naming every setting that does not fit:
 * the advance must not exceed the size, the slice must divide size and advance (so that slices of
 * every window sit on multiples of the slice) and the rolling spans must be whole slices.
 */
export function windowSpec (config: WindowSettings): WindowSpec {
  const sizeMs = config.WINDOW_SIZE_MS
  const advanceMs = config.WINDOW_ADVANCE_MS === 0 ? sizeMs : config.WINDOW_ADVANCE_MS
  const sliceMs = config.WINDOW_SLICE_MS
  const problems: string[] = []
  if (advanceMs > sizeMs) {
    problems.push(`WINDOW_ADVANCE_MS: must not exceed WINDOW_SIZE_MS (${sizeMs}), ` +
      `or windows would leave gaps (got ${advanceMs})`)
  }
  if (sizeMs % sliceMs !== 0 || advanceMs % sliceMs !== 0) {
    problems.push(`WINDOW_SLICE_MS: must divide WINDOW_SIZE_MS (${sizeMs}) and the window advance (${advanceMs}), ` +
      `e.g. ${fittingSlice(sizeMs, advanceMs, sliceMs)} (got ${sliceMs})`)
  } else if (sizeMs / sliceMs > MAX_SLICES_PER_WINDOW) {
    problems.push(`WINDOW_SLICE_MS: at most ${MAX_SLICES_PER_WINDOW} slices per window, ` +
      `so at least ${Math.ceil(sizeMs / MAX_SLICES_PER_WINDOW)} for WINDOW_SIZE_MS ${sizeMs} (got ${sliceMs})`)
  }
  for (const name of ['ROLLING_COUNT_SPAN_MS', 'ROLLING_DURATION_SPAN_MS'] as const) {
    if (config[name] % sliceMs !== 0) {
      problems.push(`${name}: must be a multiple of WINDOW_SLICE_MS (${sliceMs}), ` +
        `as rolling totals are cut at slice boundaries (got ${config[name]})`)
    }
  }
  if (problems.length > 0) throw new ConfigError(problems)
  return { sizeMs, advanceMs, graceMs: config.WINDOW_GRACE_MS, sliceMs }
}

/** Start times of every window that holds an event at `time`, oldest first: starts are multiples of the advance. */
export function windowStartsFor (time: number, spec: WindowSpec): number[] {
  const starts: number[] = []
  const newest = Math.floor(time / spec.advanceMs) * spec.advanceMs
  for (let start = newest; start > time - spec.sizeMs; start -= spec.advanceMs) starts.unshift(start)
  return starts
}

/**
 * A window closes once stream time (the largest event time seen on its partition) minus the
 * grace period has reached its end; after that it never changes again.
 */
export function isClosed (windowEnd: number, streamTime: number, spec: WindowSpec): boolean {
  return windowEnd <= streamTime - spec.graceMs
}

/** What the processor keeps per open window; the user set is what makes distinct users exact. */
export interface WindowState {
  page: string
  start: number
  end: number
  count: number
  durationSum: number
  users: Set<string>
  longViews: number
  /** Sub-totals of [start + i * sliceMs, start + (i + 1) * sliceMs): fixed length (end - start) / sliceMs. */
  sliceMs: number
  sliceCounts: number[]
  sliceDurationSums: number[]
}

/** A window with nothing counted yet, its slices all zero. */
export function emptyWindow (page: string, start: number, end: number, sliceMs: number): WindowState {
  const slices = Math.max(1, Math.ceil((end - start) / sliceMs))
  return {
    page,
    start,
    end,
    count: 0,
    durationSum: 0,
    users: new Set(),
    longViews: 0,
    sliceMs,
    sliceCounts: new Array<number>(slices).fill(0),
    sliceDurationSums: new Array<number>(slices).fill(0),
  }
}

/** The slice of `state` holding `time` (a time inside the window). */
export function sliceIndex (state: WindowState, time: number): number {
  return Math.min(state.sliceCounts.length - 1, Math.max(0, Math.floor((time - state.start) / state.sliceMs)))
}

/**
 * The slices of a record, or of a changelog value, as they arrived; a value written before slices
 * existed (or with slices that do not fit its window) is one slice: the whole window.
 */
export function slicesOf (
  value: { count: number, durationSum: number, sliceMs?: number, sliceCounts?: number[], sliceDurationSums?: number[] },
  start: number,
  end: number
): { sliceMs: number, sliceCounts: number[], sliceDurationSums: number[] } {
  const { sliceMs, sliceCounts, sliceDurationSums } = value
  const fits = sliceMs !== undefined && sliceMs > 0 && (end - start) % sliceMs === 0 &&
    sliceCounts?.length === (end - start) / sliceMs && sliceDurationSums?.length === sliceCounts.length
  if (fits) return { sliceMs, sliceCounts, sliceDurationSums }
  return { sliceMs: Math.max(1, end - start), sliceCounts: [value.count], sliceDurationSums: [value.durationSum] }
}
