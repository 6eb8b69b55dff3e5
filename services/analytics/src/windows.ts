import { FormatRegistry, Type, type Static } from '@sinclair/typebox'
import { ConfigError } from '@pagestream/core'

// TypeBox checks formats only when registered; Fastify's own validator knows date-time already
if (!FormatRegistry.Has('date-time')) FormatRegistry.Set('date-time', (value) => /^\d{4}-\d{2}-\d{2}T/.test(value) && !Number.isNaN(Date.parse(value)))

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
    problems.push(`WINDOW_ADVANCE_MS: must not exceed WINDOW_SIZE_MS (${sizeMs}), or windows would leave gaps (got ${advanceMs})`)
  }
  if (sizeMs % sliceMs !== 0 || advanceMs % sliceMs !== 0) {
    problems.push(`WINDOW_SLICE_MS: must divide WINDOW_SIZE_MS (${sizeMs}) and the window advance (${advanceMs}), e.g. ${fittingSlice(sizeMs, advanceMs, sliceMs)} (got ${sliceMs})`)
  } else if (sizeMs / sliceMs > MAX_SLICES_PER_WINDOW) {
    problems.push(`WINDOW_SLICE_MS: at most ${MAX_SLICES_PER_WINDOW} slices per window, so at least ${Math.ceil(sizeMs / MAX_SLICES_PER_WINDOW)} for WINDOW_SIZE_MS ${sizeMs} (got ${sliceMs})`)
  }
  for (const name of ['ROLLING_COUNT_SPAN_MS', 'ROLLING_DURATION_SPAN_MS'] as const) {
    if (config[name] % sliceMs !== 0) problems.push(`${name}: must be a multiple of WINDOW_SLICE_MS (${sliceMs}), as rolling totals are cut at slice boundaries (got ${config[name]})`)
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

/** One window of one page as it travels on the output topic (R4). Times are ISO 8601. */
export const WindowRecordSchema = Type.Object({
  page: Type.String(),
  windowStart: Type.String({ format: 'date-time' }),
  windowEnd: Type.String({ format: 'date-time' }),
  count: Type.Integer({ minimum: 0, description: 'events in the window' }),
  durationSum: Type.Integer({ minimum: 0, description: 'sum of their durations, ms' }),
  distinctUsers: Type.Integer({ minimum: 0, description: 'different users among them' }),
  longViews: Type.Integer({ minimum: 0, description: 'events longer than the long-view threshold' }),
  final: Type.Boolean({ description: 'true on the one record sent when the window closed' }),
  // optional only so that records written before slices existed still read; always sent now
  sliceMs: Type.Optional(Type.Integer({ minimum: 1, description: 'length of a slice: the window is cut into (windowEnd - windowStart) / sliceMs slices, each starting at windowStart + i * sliceMs' })),
  sliceCounts: Type.Optional(Type.Array(Type.Integer({ minimum: 0 }), { description: 'events per slice, oldest first' })),
  sliceDurationSums: Type.Optional(Type.Array(Type.Integer({ minimum: 0 }), { description: 'sum of durations per slice, oldest first' })),
  // never written by the processor: the view sets it when it summed the finals of several writers
  combinedFinals: Type.Optional(Type.Integer({
    minimum: 2,
    description: 'finals of this window from different writers that the view summed (distinctUsers an upper bound)',
  })),
}, { $id: 'WindowRecord' })
export type WindowRecord = Static<typeof WindowRecordSchema>

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
  return { page, start, end, count: 0, durationSum: 0, users: new Set(), longViews: 0, sliceMs, sliceCounts: new Array<number>(slices).fill(0), sliceDurationSums: new Array<number>(slices).fill(0) }
}

/** The slice of `state` holding `time` (a time inside the window). */
export function sliceIndex (state: WindowState, time: number): number {
  return Math.min(state.sliceCounts.length - 1, Math.max(0, Math.floor((time - state.start) / state.sliceMs)))
}

/**
 * The slices of a record, or of a changelog value, as they arrived; a value written before slices
 * existed (or with slices that do not fit its window) is one slice: the whole window.
 */
export function slicesOf (value: { count: number, durationSum: number, sliceMs?: number, sliceCounts?: number[], sliceDurationSums?: number[] }, start: number, end: number): { sliceMs: number, sliceCounts: number[], sliceDurationSums: number[] } {
  const { sliceMs, sliceCounts, sliceDurationSums } = value
  const fits = sliceMs !== undefined && sliceMs > 0 && (end - start) % sliceMs === 0 &&
    sliceCounts?.length === (end - start) / sliceMs && sliceDurationSums?.length === sliceCounts.length
  if (fits) return { sliceMs, sliceCounts, sliceDurationSums }
  return { sliceMs: Math.max(1, end - start), sliceCounts: [value.count], sliceDurationSums: [value.durationSum] }
}

export function windowRecord (state: WindowState, final: boolean): WindowRecord {
  return {
    page: state.page,
    windowStart: new Date(state.start).toISOString(),
    windowEnd: new Date(state.end).toISOString(),
    count: state.count,
    durationSum: state.durationSum,
    distinctUsers: state.users.size,
    longViews: state.longViews,
    final,
    sliceMs: state.sliceMs,
    sliceCounts: [...state.sliceCounts],
    sliceDurationSums: [...state.sliceDurationSums],
  }
}

/** Changelog key of a window; the value carries page and start again, so the key is never parsed. */
export function windowKey (page: string, start: number): string {
  return `${page}|${start}`
}

/** Changelog value: the whole window state, user set and slices included, so a restore is exact. */
export function encodeWindowState (state: WindowState): string {
  return JSON.stringify({
    page: state.page,
    start: state.start,
    end: state.end,
    count: state.count,
    durationSum: state.durationSum,
    users: [...state.users],
    longViews: state.longViews,
    sliceMs: state.sliceMs,
    sliceCounts: state.sliceCounts,
    sliceDurationSums: state.sliceDurationSums,
  })
}

/**
 * A changelog value back to window state. A value written before slices existed restores as one
 * slice (the whole window), and the window goes on counting into that one slice until it closes.
 */
export function decodeWindowState (value: string): WindowState {
  const raw = JSON.parse(value) as Omit<WindowState, 'users' | 'sliceMs' | 'sliceCounts' | 'sliceDurationSums'> & { users: string[], sliceMs?: number, sliceCounts?: number[], sliceDurationSums?: number[] }
  return {
    page: raw.page,
    start: raw.start,
    end: raw.end,
    count: raw.count,
    durationSum: raw.durationSum,
    users: new Set(raw.users),
    longViews: raw.longViews,
    ...slicesOf(raw, raw.start, raw.end),
  }
}
