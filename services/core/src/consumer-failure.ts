import type { KafkaJS } from '@confluentinc/kafka-javascript'
import type { FastifyBaseLogger } from 'fastify'

/**
 * librdkafka's ERR__FATAL ("Local: Fatal error") and its log line for a fenced static member
 * ("Fatal error: Broker: Static consumer fenced by other consumer with same group.instance.id").
 */
export const FATAL_CONSUMER_ERROR = /Fatal error|Static consumer fenced/

/**
 * A consumer's logger that also reports fatal errors: @confluentinc/kafka-javascript 1.10 only logs
 * them (its event.error handler and its fetch loop log and retry for ever), so the log is the one signal.
 */
export function fatalErrorWatch (log: FastifyBaseLogger, onFatal: (message: string) => void): KafkaJS.Logger {
  const adapter: KafkaJS.Logger = {
    info: (message, extra) => log.info(extra ?? {}, message),
    warn: (message, extra) => log.warn(extra ?? {}, message),
    error: (message, extra) => {
      log.error(extra ?? {}, message)
      // the client's line can carry a stack trace: its first line says enough
      if (FATAL_CONSUMER_ERROR.test(message)) onFatal(message.split('\n')[0] ?? message)
    },
    debug: (message, extra) => log.debug(extra ?? {}, message),
    namespace: () => adapter,
    setLogLevel: () => {},
  }
  return adapter
}
