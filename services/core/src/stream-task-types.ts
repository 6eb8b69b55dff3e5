import type { KafkaJS } from '@confluentinc/kafka-javascript'
import type { KafkaMessage } from './kafka.js'

/** A record a batch function asks to write; `partition` unset: the producer's partitioner places it by key. */
export interface OutgoingRecord {
  key: string | Buffer | null
  value: string | Buffer | null
  partition?: number
  timestamp?: string
  headers?: KafkaJS.IHeaders
}

/** What one input batch becomes: records per topic, dead letters, and the input offset to commit. */
export interface BatchResult {
  outputs: Array<{ topic: string, messages: OutgoingRecord[] }>
  deadLetters: OutgoingRecord[]
  /** One past the last input record of the batch. */
  nextOffset: string
}

/** The role's own part: a pure function of one partition's batch (it must not throw for bad records). */
export type BatchFunction = (topic: string, partition: number, messages: KafkaMessage[]) => BatchResult

/**
 * What a task does once another instance took its place: fenced as a producer (a newer instance
 * initialised its transactional.id) or, for 'recover', its consumer failed fatally (a static member
 * fenced by a twin with its id).
 * - 'step down': hands over for good: clients closed, not ready until restarted (taking over again
 *   would fence the other in turn, and neither would ever commit). A fatal consumer error makes it
 *   start over with new clients after a backoff; of two twins, the first one fenced steps down.
 * - 'recover': stands down the same way, then asks the group every few seconds whether another member
 *   still uses its instance id, and opens new clients once none has for two checks in a row (state
 *   restored on assignment): a live twin keeps it out, a twin that died lets it back without a restart.
 */
export type RecoveryPolicy = 'step down' | 'recover'

export interface StreamTaskSettings {
  /** For logs: 'transformer', 'repartition'. */
  name: string
  inputTopic: string
  deadLetterTopic: string
  groupId: string
  /** transactional.id (and group.instance.id when static): stable per instance, so a restart fences its zombie. */
  transactionalId: string
  /** Join as a static group member named transactionalId (no rebalance when the same instance comes back). */
  staticMembership: boolean
  /** Most input records one transaction carries (a stateless task's transaction commits once it holds them). */
  batchSize: number
  /**
   * Stateless tasks: longest a transaction stays open taking further batches before it commits (0 or unset:
   * one transaction per batch the consumer hands over). Longer: fewer commits per record under load, more
   * latency for readers of the output (read_committed sees the records at the commit).
   */
  transactionMs?: number
  /**
   * message.timeout.ms; the transaction timeout is 10 s more, so a stuck send fails the transaction
   * first. Undefined: the transactional producer's defaults.
   */
  deliveryTimeoutMs?: number
  /** The setting that names the instance, for the step-down advice in logs and readiness. */
  instanceVariable: string
  /** Longest wait for the consumer to close (default 5 s). */
  consumerCloseTimeoutMs?: number
  /** Default 'step down'. */
  recovery?: RecoveryPolicy
  /** The instance id a stood-down task names in its readiness ('recover'; default: the transactional.id). */
  instanceId?: string
  /** Tries of one commit that fails with a retriable error, before the transaction is aborted (default 1). */
  commitAttempts?: number
  /** Stateful tasks: one transaction for every owned partition's outputs and offsets per interval. */
  commitIntervalMs?: number
  /**
   * What the consumer fetches ahead: librdkafka's queued.min.messages (per partition) and
   * queued.max.messages.kbytes (the whole queue). Unset: librdkafka's defaults (100k records, 64 MB).
   */
  prefetch?: { records: number, kilobytes: number }
}

/** What a transaction did, for metrics. */
export interface StreamTaskObserver {
  committed(result: { written: number, deadLettered: number, seconds: number }): void
  aborted(): void
  producerReplaced(): void
  consumerFailed(): void
  stoodDown?(reason: StandDownReason): void
  recovered?(): void
}

export type StandDownReason = 'fenced' | 'consumer fatal error'

export interface StreamTaskCounts {
  /** Records written to the outputs (committed transactions only). */
  written: number
  deadLettered: number
  transactionsCommitted: number
  transactionsAborted: number
  producerReplacements: number
  timesFenced: number
  /** Fatal consumer errors (a static member fenced by a twin with its id...), each followed by new clients. */
  consumerFatalErrors: number
}
