import {
  type DeadLetterWriter, InvalidPageEventError, type KafkaBatch, type KafkaMessage, type Producer,
  deadLetterMessage, deadLetterTopic, decodePageEvent,
} from '@pagestream/core'
import type { FastifyBaseLogger } from 'fastify'
import { Counter, type Registry } from 'prom-client'

export interface EventLoggerStats { logged: number, deadLettered: number }

/**
 * The lab's consumer: every PageEvent of the topic becomes one structured log line. Poison
 * records go to the dead-letter topic; a batch is done (and may be committed) only once its
 * dead letters were acknowledged, so nothing is skipped silently.
 */
export class EventLogger {
  readonly stats: EventLoggerStats = { logged: 0, deadLettered: 0 }
  readonly #logged: Counter
  readonly #deadLettered: Counter

  constructor (
    private readonly dlqProducer: Producer,
    private readonly log: FastifyBaseLogger,
    metrics: Registry,
    private readonly writer: DeadLetterWriter
  ) {
    this.#logged = new Counter({
      name: 'pagestream_events_logged_total', help: 'page events logged', registers: [metrics],
    })
    this.#deadLettered = new Counter({
      name: 'pagestream_events_dead_lettered_total',
      help: 'malformed records sent to the dead-letter topic',
      registers: [metrics],
    })
  }

  /** Logs a batch and waits for its dead letters; returns the offset to commit (one past its last record). */
  async handleBatch (batch: KafkaBatch): Promise<string | undefined> {
    const deadLetters: Array<Promise<unknown>> = []
    for (const message of batch.messages) {
      const poison = this.#handle(batch.topic, batch.partition, message)
      if (poison !== undefined) deadLetters.push(poison)
    }
    await Promise.all(deadLetters)
    const last = batch.messages.at(-1)
    return last === undefined ? undefined : String(Number(last.offset) + 1)
  }

  #handle (topic: string, partition: number, message: KafkaMessage): Promise<unknown> | undefined {
    try {
      const event = decodePageEvent(message.value)
      this.log.info({ topic, partition, offset: message.offset, event }, 'page event')
      this.stats.logged++
      this.#logged.inc()
      return undefined
    } catch (err) {
      if (!(err instanceof InvalidPageEventError)) throw err
      const where = { topic, partition, offset: message.offset }
      this.log.warn({ ...where, reason: err.message }, 'malformed record sent to the dead-letter topic')
      this.stats.deadLettered++
      this.#deadLettered.inc()
      const letter = deadLetterMessage({ topic, partition, message }, err, this.writer)
      return this.dlqProducer.send({ topic: deadLetterTopic(topic), messages: [letter] })
    }
  }
}
