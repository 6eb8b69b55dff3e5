import type { KafkaMessage } from './kafka.js'
import type { OutgoingRecord } from './stream-task-types.js'

/** Records for one topic, in the order they are to be written. */
export interface TopicRecords { topic: string, messages: OutgoingRecord[] }

/**
 * The role's part of a stateful stream task: state per owned input partition, backed by a
 * changelog the role writes among its outputs. The task calls it on one queue, never two at once:
 * batches, commit cycles and rebalances never interleave.
 */
export interface PartitionState {
  /**
   * Restore hook: loads the partitions' state as of their last commit (the changelog read to its
   * end), on assignment and on every rewind after a failed transaction. Throws when it cannot: the
   * partitions then count as not restored and are tried again at the next commit cycle.
   */
  restore (partitions: number[]): Promise<void>
  /** Forgets the partitions' state: revoked, stood down, or a rewind that failed. */
  release (partitions: number[]): void
  /**
   * Takes a partition's new records into its state (records before its last commit are never
   * passed twice; the list can be empty). Must not throw for bad records: they are outputs too.
   */
  process (partition: number, messages: KafkaMessage[]): void
  /**
   * What the next transaction carries for the partition, any number of topics; `idleMs`: time
   * since the partition's last input, restore or assignment (for timers that close on the clock).
   */
  outputs (partition: number, idleMs: number): TopicRecords[]
  /** The transaction that carried the partitions' outputs committed. */
  committed (partitions: number[]): void
}

/** What the task keeps of an owned partition of a stateful task, besides the role's state. */
export interface OwnedPosition {
  /** The first offset the state has not counted: records before it (a stale seek) are skipped. */
  position: number
  /** Offset to commit with the next transaction (last processed + 1). */
  nextOffset: string | undefined
  /** Wall-clock time of the partition's last batch, assignment or restore: it is idle from then on. */
  quietSince: number
}

/** Outputs of several partitions as one list per topic, each topic's records in partition order. */
export function mergeByTopic (parts: TopicRecords[][]): TopicRecords[] {
  const byTopic = new Map<string, OutgoingRecord[]>()
  for (const part of parts) {
    for (const { topic, messages } of part) {
      if (messages.length === 0) continue
      const list = byTopic.get(topic)
      if (list === undefined) byTopic.set(topic, [...messages])
      else list.push(...messages)
    }
  }
  return [...byTopic].map(([topic, messages]) => ({ topic, messages }))
}

/** Where a partition starts: its committed offset, or librdkafka's -2 (the beginning) for a fresh group. */
export function startOffset (committed: string | null): number {
  return committed === null ? -2 : Number(committed)
}
