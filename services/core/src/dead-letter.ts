import type { KafkaMessage } from './kafka.js'

export const DLQ_HEADERS = {
  error: 'dlq-error',
  topic: 'dlq-source-topic',
  partition: 'dlq-source-partition',
  offset: 'dlq-source-offset',
  role: 'dlq-role',
  consumerGroup: 'dlq-consumer-group',
} as const

/** Who dead-lettered a record: one input topic can have several reading roles, each writing to its one .dlq. */
export interface DeadLetterWriter {
  role: string
  /** The consumer group that read the record (absent only where the caller does not know it). */
  consumerGroup?: string
}

/** The poison record as it was (key, value, headers), plus why it failed, where it came from and who sent it. */
export function deadLetterMessage (
  source: { topic: string, partition: number, message: KafkaMessage },
  error: Error,
  writer: DeadLetterWriter
) {
  const { message } = source
  return {
    key: message.key,
    value: message.value,
    headers: {
      ...(message.headers ?? {}),
      [DLQ_HEADERS.error]: error.message,
      [DLQ_HEADERS.topic]: source.topic,
      [DLQ_HEADERS.partition]: String(source.partition),
      [DLQ_HEADERS.offset]: message.offset,
      [DLQ_HEADERS.role]: writer.role,
      ...(writer.consumerGroup === undefined ? {} : { [DLQ_HEADERS.consumerGroup]: writer.consumerGroup }),
    },
  }
}
