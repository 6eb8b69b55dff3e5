import { randomUUID } from 'node:crypto'
import { type Static, Type } from '@sinclair/typebox'
import type { MessageHeader } from '@confluentinc/kafka-javascript'
import {
  HttpError, type KafkaContext, type PageEvent, pageEventMessage, tracedSend,
} from '@pagestream/core'
import type { FastifyBaseLogger } from 'fastify'
import { Counter, type Registry } from 'prom-client'
import type { RecordSender } from './record-sender.js'

/** Where the broker put one event: what POST /events answers per event. */
export const PublishedEventSchema = Type.Object({
  eventId: Type.String({ description: 'the event-id header of the record' }),
  partition: Type.Integer(),
  offset: Type.String({ description: 'a string, as offsets outgrow JavaScript numbers' }),
})
export type PublishedEvent = Static<typeof PublishedEventSchema>

const RETRY_AFTER_SECONDS = '5'
/** The `reason` label of pagestream_publish_failures_total. */
const REFUSAL_REASONS = ['brokers-unreachable', 'not-acknowledged'] as const
type RefusalReason = typeof REFUSAL_REASONS[number]

/**
 * Publishes events and answers only once the broker acknowledged every one of them (acks=all,
 * idempotent). When the brokers do not answer it fails fast with 503 and Retry-After.
 */
export class Publisher {
  readonly #published: Counter<'topic'>
  readonly #refused: Counter<'topic' | 'reason'>

  constructor (
    private readonly sender: RecordSender,
    private readonly kafka: KafkaContext,
    metrics: Registry,
    private readonly log: FastifyBaseLogger,
    private readonly timeoutMs: number,
    topics: readonly string[]
  ) {
    this.#published = new Counter({
      name: 'pagestream_events_published_total',
      help: 'events acknowledged by the broker',
      labelNames: ['topic'],
      registers: [metrics],
    })
    this.#refused = new Counter({
      name: 'pagestream_publish_failures_total',
      help: 'events the broker did not acknowledge',
      labelNames: ['topic', 'reason'],
      registers: [metrics],
    })
    // every series from the start at 0, so rates and alerts read 0 rather than "no data"
    for (const topic of topics) {
      this.#published.inc({ topic }, 0)
      for (const reason of REFUSAL_REASONS) this.#refused.inc({ topic, reason }, 0)
    }
  }

  async publish (topic: string, events: PageEvent[]): Promise<PublishedEvent[]> {
    if (!this.kafka.watch.reachable) {
      this.#refused.inc({ topic, reason: 'brokers-unreachable' satisfies RefusalReason }, events.length)
      throw new HttpError(
        503,
        'the Kafka brokers are unreachable; nothing was written, retry later',
        { 'retry-after': RETRY_AFTER_SECONDS }
      )
    }
    const outcomes = await this.#sendAll(topic, events)
    const failed = outcomes.filter((o) => o instanceof Error)
    if (failed.length > 0) {
      this.#refused.inc({ topic, reason: 'not-acknowledged' satisfies RefusalReason }, failed.length)
      const acknowledged = outcomes.length - failed.length
      // the client library's reason stays in our log; the client learns what was and was not written
      this.log.warn({ err: failed[0], topic, failed: failed.length },
        'events not acknowledged')
      // an unacknowledged send may still have reached the log (a broker killed before it answered)
      throw new HttpError(503,
        `the broker did not acknowledge ${failed.length} of ${outcomes.length} events: ` +
        `${acknowledged} were acknowledged, the other ${failed.length} may have been written; ` +
        'a retry can duplicate them (the event-id header tells them apart)',
        { 'retry-after': RETRY_AFTER_SECONDS })
    }
    this.#published.inc({ topic }, events.length)
    return outcomes as PublishedEvent[]
  }

  /**
   * Sends every event (the sender batches them with other requests' records) and waits for each one's
   * acknowledgement or failure, or for the deadline: an event without an answer by then counts as failed.
   * One timer per request, not per event. librdkafka's message.timeout.ms is the same deadline; this
   * one holds even when the client itself stalls.
   */
  #sendAll (topic: string, events: PageEvent[]): Promise<Array<PublishedEvent | Error>> {
    const outcomes: Array<PublishedEvent | Error | undefined> = new Array(events.length)
    return new Promise((resolve) => {
      let waiting = events.length
      const timer = setTimeout(() => {
        const expired = new Error(`no acknowledgement within ${this.timeoutMs} ms`)
        resolve(Array.from(outcomes, (outcome) => outcome ?? expired))
      }, this.timeoutMs)
      const settle = (index: number, outcome: PublishedEvent | Error) => {
        outcomes[index] = outcome
        waiting -= 1
        if (waiting === 0) {
          clearTimeout(timer)
          resolve(outcomes as Array<PublishedEvent | Error>)
        }
      }
      events.forEach((event, index) => {
        const eventId = randomUUID()
        // the trace context (when tracing is on) goes into the record's headers beside the event id
        tracedSend(topic, pageEventMessage(event, eventId), ({ key, value, headers }) =>
          this.sender.send(topic, key, value, headerList(headers))
        ).then(
          ({ partition, offset }) => settle(index, { eventId, partition, offset }),
          (err: Error) => settle(index, err)
        )
      })
    })
  }
}

/** librdkafka's header list from a record's header map (one entry per name, in order). */
function headerList (headers: Record<string, string | Buffer | Array<string | Buffer> | undefined>): MessageHeader[] {
  const list: MessageHeader[] = []
  for (const [name, value] of Object.entries(headers)) {
    for (const one of Array.isArray(value) ? value : [value]) if (one !== undefined) list.push({ [name]: one })
  }
  return list
}
