import type { FastifyBaseLogger } from 'fastify'
import { type KafkaClient, type StreamTaskObserver, StreamTask } from '@pagestream/core'
import { transformBatch } from './transform.js'

export interface ProcessorSettings {
  inputTopic: string
  outputTopic: string
  deadLetterTopic: string
  groupId: string
  /** transactional.id and group.instance.id: stable per instance, so a restart fences its zombie. */
  instanceId: string
  /** Join as a static group member named instanceId (no rebalance when the same instance comes back). */
  staticMembership: boolean
  /** Most input records one transaction carries. */
  batchSize: number
  /** Longest a transaction stays open taking further batches (0: one per consumer batch). */
  transactionMs: number
  /** message.timeout.ms; the transaction timeout is 10 s more, so a stuck send fails the transaction first. */
  deliveryTimeoutMs: number
}

/** R1 -> R3 exactly once: the core stream task with the lab's function as its batch function. */
export function transformProcessor (
  client: KafkaClient, settings: ProcessorSettings, log: FastifyBaseLogger, observer: StreamTaskObserver
): StreamTask {
  return new StreamTask(client, {
    name: 'transformer',
    inputTopic: settings.inputTopic,
    deadLetterTopic: settings.deadLetterTopic,
    groupId: settings.groupId,
    transactionalId: settings.instanceId,
    staticMembership: settings.staticMembership,
    batchSize: settings.batchSize,
    transactionMs: settings.transactionMs,
    deliveryTimeoutMs: settings.deliveryTimeoutMs,
    instanceVariable: 'TRANSFORMER_INSTANCE_ID',
  }, (topic, partition, messages) => {
    const work = transformBatch(topic, partition, messages, { role: 'transformer', consumerGroup: settings.groupId })
    const outputs = [{ topic: settings.outputTopic, messages: work.outputs }]
    return { outputs, deadLetters: work.deadLetters, nextOffset: work.nextOffset }
  }, log, observer)
}
