import { FormatRegistry, Type, type Static } from '@sinclair/typebox'
import type { WindowState } from './window-geometry.js'

// TypeBox checks formats only when registered; Fastify's own validator knows date-time already
if (!FormatRegistry.Has('date-time')) {
  FormatRegistry.Set(
    'date-time', (value) => /^\d{4}-\d{2}-\d{2}T/.test(value) && !Number.isNaN(Date.parse(value))
  )
}

/**
 * One window of one page as it travels on the output topic (R4), times in ISO 8601: the contract
 * between the processor that writes it and every view that reads it, whatever window spec the reader has.
 */
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
  sliceMs: Type.Optional(Type.Integer({
    minimum: 1,
    description: 'length of a slice: the window is cut into (windowEnd - windowStart) / sliceMs slices, ' +
      'each starting at windowStart + i * sliceMs',
  })),
  sliceCounts: Type.Optional(
    Type.Array(Type.Integer({ minimum: 0 }), { description: 'events per slice, oldest first' })
  ),
  sliceDurationSums: Type.Optional(
    Type.Array(Type.Integer({ minimum: 0 }), { description: 'sum of durations per slice, oldest first' })
  ),
  // never written by the processor: the view sets it when it summed the finals of several writers
  combinedFinals: Type.Optional(Type.Integer({
    minimum: 2,
    description: 'finals of this window from different writers that the view summed (distinctUsers an upper bound)',
  })),
}, { $id: 'WindowRecord' })
export type WindowRecord = Static<typeof WindowRecordSchema>

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
