import type { KafkaMessage } from './kafka.js'

export const DLQ_HEADERS = {
  error: 'dlq-error',
  topic: 'dlq-source-topic',
  partition: 'dlq-source-partition',
  offset: 'dlq-source-offset',
} as const

/** The poison record as it was (key, value, headers), plus why it failed and where it came from. */
export function deadLetterMessage (source: { topic: string, partition: number, message: KafkaMessage }, error: Error) {
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
    },
  }
}
