import { FormatRegistry, Type, type Static } from '@sinclair/typebox'

// TypeBox checks formats only when registered; Fastify's own validator knows date-time already
if (!FormatRegistry.Has('date-time')) FormatRegistry.Set('date-time', (value) => /^\d{4}-\d{2}-\d{2}T/.test(value) && !Number.isNaN(Date.parse(value)))

/** How event time is cut into windows: tumbling when advance equals size, hopping when it is smaller. */
export interface WindowSpec {
  sizeMs: number
  advanceMs: number
  graceMs: number
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
  }
}

/** Changelog key of a window; the value carries page and start again, so the key is never parsed. */
export function windowKey (page: string, start: number): string {
  return `${page}|${start}`
}

/** Changelog value: the whole window state, user set included, so a restore is exact. */
export function encodeWindowState (state: WindowState): string {
  return JSON.stringify({ page: state.page, start: state.start, end: state.end, count: state.count, durationSum: state.durationSum, users: [...state.users], longViews: state.longViews })
}

export function decodeWindowState (value: string): WindowState {
  const raw = JSON.parse(value) as Omit<WindowState, 'users'> & { users: string[] }
  return { ...raw, users: new Set(raw.users) }
}
