import { Type, type Static } from '@sinclair/typebox'
import { Value } from '@sinclair/typebox/value'
import type { Admin } from '@pagestream/core'
import { ensureCopartitioned } from './copartitioned.js'
import { type WindowState, slicesOf } from './window-geometry.js'

/**
 * Compaction never touches the active segment, and by default a segment rolls only after 7 days or
 * 1 GiB: every window ever written would stay in the changelog for a week and each restore would
 * read all of it (readToEnd gives up after 120 s). Short segments and an eager cleaner keep the
 * changelog near the size of the open state: about the open windows plus what the last
 * ~10 minutes wrote (the roll interval) plus a dirty tenth.
 */
export const CHANGELOG_CONFIG: Readonly<Record<string, string>> = {
  'cleanup.policy': 'compact',
  'min.compaction.lag.ms': '0',
  'segment.ms': String(10 * 60_000),
  'segment.bytes': String(16 * 1024 * 1024),
  'min.cleanable.dirty.ratio': '0.1',
  // tombstones of final windows are dropped by the cleaner 10 minutes after compaction saw them
  'delete.retention.ms': String(10 * 60_000),
}

/**
 * The changelog has as many partitions as the input: state of input partition N is written to and
 * restored from changelog partition N. An existing changelog with another count is refused.
 * A new changelog gets CHANGELOG_CONFIG; an existing one is left as it is (the admin API of
 * @confluentinc/kafka-javascript has no describeConfigs/alterConfigs), see the README.
 */
export async function ensureChangelog (
  admin: Admin, input: string, changelog: string, replication: number
): Promise<void> {
  await ensureCopartitioned(admin, input, changelog, replication, CHANGELOG_CONFIG)
}

/** Changelog key of a partition's stream time; window keys always contain `|`, this one never does. */
export const STREAM_TIME_KEY = '@stream-time'

/** Changelog key of a window; the value carries page and start again, so the key is never parsed. */
export function windowKey (page: string, start: number): string {
  return `${page}|${start}`
}

const Whole = Type.Integer({ minimum: 0 })
/** Changelog value of an open window: its whole state, user set and slices included, so a restore is exact. */
const WindowStateValueSchema = Type.Object({
  page: Type.String(),
  start: Type.Integer(),
  end: Type.Integer(),
  count: Whole,
  durationSum: Whole,
  users: Type.Array(Type.String()),
  longViews: Whole,
  // absent in values written before slices existed
  sliceMs: Type.Optional(Type.Integer({ minimum: 1 })),
  sliceCounts: Type.Optional(Type.Array(Whole)),
  sliceDurationSums: Type.Optional(Type.Array(Whole)),
})
type WindowStateValue = Static<typeof WindowStateValueSchema>

/** One record of the changelog, written to the partition of the input partition whose state it holds. */
export interface ChangelogRecord { key: string, value: string | null, partition: number }

export function encodeWindowState (state: WindowState): string {
  const value: WindowStateValue = { ...state, users: [...state.users] }
  return JSON.stringify(value)
}

/**
 * A changelog value back to window state, validated: a value that is not one throws, naming the problem.
 * A value written before slices existed restores as one slice (the whole window), and the window
 * goes on counting into that one slice until it closes.
 */
export function decodeWindowState (value: string): WindowState {
  const raw: unknown = JSON.parse(value)
  if (!Value.Check(WindowStateValueSchema, raw)) {
    const problem = Value.Errors(WindowStateValueSchema, raw).First()
    throw new Error(`not a window state: ${problem?.path || '/'} ${problem?.message ?? ''}`.trimEnd())
  }
  const { page, start, end, count, durationSum, users, longViews } = raw
  return { page, start, end, count, durationSum, users: new Set(users), longViews, ...slicesOf(raw, start, end) }
}

/** An open window's state as of this transaction. */
export function windowUpdate (window: WindowState, partition: number): ChangelogRecord {
  return { key: windowKey(window.page, window.start), value: encodeWindowState(window), partition }
}

/** The window is final: a tombstone prunes it from the changelog, so compaction drops it. */
export function windowTombstone (window: WindowState, partition: number): ChangelogRecord {
  return { key: windowKey(window.page, window.start), value: null, partition }
}

export function streamTimeRecord (streamTime: number, partition: number): ChangelogRecord {
  return { key: STREAM_TIME_KEY, value: String(streamTime), partition }
}

/** What one changelog record says about a partition's state. */
export type ChangelogEntry =
  | { kind: 'stream time', streamTime: number }
  | { kind: 'window', key: string, window: WindowState }
  | { kind: 'pruned', key: string }

/** Reads one changelog record; throws for a value that is not what the processor writes under that key. */
export function decodeChangelogRecord (key: string, value: string | null): ChangelogEntry | undefined {
  if (key === STREAM_TIME_KEY) {
    if (value === null) return undefined
    const streamTime = Number(value)
    if (!Number.isSafeInteger(streamTime)) throw new Error(`${key}: not a stream time (got ${value.slice(0, 40)})`)
    return { kind: 'stream time', streamTime }
  }
  if (value === null) return { kind: 'pruned', key }
  try {
    return { kind: 'window', key, window: decodeWindowState(value) }
  } catch (err) {
    throw new Error(`changelog record ${key}: ${(err as Error).message}`)
  }
}
