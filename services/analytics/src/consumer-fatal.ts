import type { KafkaJS } from '@confluentinc/kafka-javascript'

/**
 * How librdkafka reports a consumer it has given up on: a static member fenced by another with the
 * same group.instance.id, or another fatal error. The KafkaJS layer of @confluentinc/kafka-javascript
 * neither rejects run() nor emits an event for it; it logs the consume error and retries forever
 * (confluentinc/confluent-kafka-javascript#497), so its log line is the one signal there is.
 */
const FATAL = /Local: Fatal error|Static consumer fenced|ERR__FATAL/

/** `base`, which also calls `onFatal` when the consumer reports a fatal error. */
export function fatalWatchingLogger (base: KafkaJS.Logger, onFatal: (message: string) => void): KafkaJS.Logger {
  const logger: KafkaJS.Logger = {
    ...base,
    error: (message, extra) => {
      base.error(message, extra)
      if (FATAL.test(message)) onFatal(message.split('\n')[0] ?? message)
    },
    namespace: () => logger,
  }
  return logger
}
