import type { FastifyBaseLogger } from 'fastify'
import type { Registry } from 'prom-client'
import {
  type Admin, type BatchFunction, type BatchResult, type KafkaClient, type StreamTaskSettings, InvalidPageEventError,
  StreamTask,
  deadLetterMessage, decodePageEvent, streamTaskMetrics,
} from '@pagestream/core'
import { ensureCopartitioned } from './copartitioned.js'

/** The internal topic the windowing stage reads: the input re-keyed by page. */
export function repartitionTopic (groupId: string): string {
  return `${groupId}-repartition`
}

/**
 * Each valid record of the input goes to `output` keyed by its page name, its value, timestamp
 * and headers as they were; a record that is not a PageEvent is a dead letter with the reason.
 * Keyed by page, every record of one page lands on one partition, whatever key or partition its
 * writer chose (null keys, round robin, another partitioner), so each page-window has one owner.
 */
export function rekeyByPage (output: string, consumerGroup: string): BatchFunction {
  return (topic, partition, messages): BatchResult => {
    const rekeyed: BatchResult['outputs'][number]['messages'] = []
    const deadLetters: BatchResult['deadLetters'] = []
    for (const message of messages) {
      try {
        const event = decodePageEvent(message.value)
        rekeyed.push({ key: event.name, value: message.value, timestamp: message.timestamp, headers: message.headers })
      } catch (err) {
        if (!(err instanceof InvalidPageEventError)) throw err
        deadLetters.push(deadLetterMessage({ topic, partition, message }, err, { role: 'analytics', consumerGroup }))
      }
    }
    const last = messages.at(-1)
    if (last === undefined) throw new Error('rekeyByPage needs at least one record')
    const nextOffset = (BigInt(last.offset) + 1n).toString()
    return { outputs: [{ topic: output, messages: rekeyed }], deadLetters, nextOffset }
  }
}

export interface RepartitionSettings {
  client: KafkaClient
  log: FastifyBaseLogger
  metrics: Registry
  input: string
  output: string
  deadLetter: string
  /** The role's group id: the stage's group and transactional.id are derived from it. */
  groupId: string
  instanceId: string
  staticMembership: boolean
  /** Longest a transaction stays open taking further batches (0: one per consumer batch). */
  transactionMs: number
  /** Most records per transaction. */
  batchSize: number
  prefetch?: StreamTaskSettings['prefetch']
}

/** The repartition topic, created with the input's partition count (an existing one with another count is refused). */
export async function ensureRepartitionTopic (
  admin: Admin, input: string, topic: string, replication: number
): Promise<void> {
  await ensureCopartitioned(admin, input, topic, replication)
}

/** The consumer group (and transactional.id prefix) of the re-keying stage. */
export function repartitionGroup (groupId: string): string {
  return `${groupId}-repartition`
}

/**
 * The re-keying stage, as Kafka Streams runs one before a groupBy: input -> repartition topic,
 * one transaction per batch with the input offsets (own consumer group and transactional.id).
 * Fenced, or its consumer failed, it stands down and recovers as the window processor does.
 */
export function repartitionStage (settings: RepartitionSettings): StreamTask {
  const { input, output, groupId } = settings
  const group = repartitionGroup(groupId)
  return new StreamTask(settings.client, {
    name: 'repartition stage',
    inputTopic: input,
    deadLetterTopic: settings.deadLetter,
    groupId: group,
    transactionalId: `${group}-${settings.instanceId}`,
    staticMembership: settings.staticMembership,
    batchSize: settings.batchSize,
    transactionMs: settings.transactionMs,
    ...(settings.prefetch === undefined ? {} : { prefetch: settings.prefetch }),
    deliveryTimeoutMs: 10_000,
    instanceVariable: 'ANALYTICS_INSTANCE_ID',
    // one policy for both analytics stages: a twin that lives keeps the stage out, one that died lets it back
    recovery: 'recover',
    instanceId: settings.instanceId,
  }, rekeyByPage(output, group), settings.log, streamTaskMetrics(settings.metrics, {
    prefix: 'analytics_repartition',
    verb: 'rekeyed',
    writtenHelp: 'input records written to the repartition topic, keyed by page (committed transactions only)',
  }))
}
