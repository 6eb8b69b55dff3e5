import { randomUUID } from 'node:crypto'
import { type Static, Type } from '@sinclair/typebox'
import { HttpError, type KafkaContext, type PageEvent, type Producer, pageEventMessage } from '@pagestream/core'
import type { FastifyBaseLogger } from 'fastify'
import { Counter, type Registry } from 'prom-client'

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
    private readonly producer: Producer,
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
    // one send per event: the client reports offsets per partition, and we promise them per record
    const outcomes = await Promise.allSettled(events.map(async (event) => {
      const eventId = randomUUID()
      const [metadata] = await withDeadline(
        this.producer.send({ topic, messages: [pageEventMessage(event, eventId)] }), this.timeoutMs
      )
      if (metadata === undefined || metadata.errorCode !== 0) {
        throw new Error(`broker error ${metadata?.errorCode ?? 'unknown'}`)
      }
      return { eventId, partition: metadata.partition, offset: metadata.baseOffset ?? String(metadata.offset) }
    }))
    const failed = outcomes.filter((o) => o.status === 'rejected')
    if (failed.length > 0) {
      this.#refused.inc({ topic, reason: 'not-acknowledged' satisfies RefusalReason }, failed.length)
      const acknowledged = outcomes.length - failed.length
      // the client library's reason stays in our log; the client learns what was and was not written
      this.log.warn({ err: (failed[0] as PromiseRejectedResult).reason, topic, failed: failed.length },
        'events not acknowledged')
      // an unacknowledged send may still have reached the log (a broker killed before it answered)
      throw new HttpError(503,
        `the broker did not acknowledge ${failed.length} of ${outcomes.length} events: ` +
        `${acknowledged} were acknowledged, the other ${failed.length} may have been written; ` +
        'a retry can duplicate them (the event-id header tells them apart)',
        { 'retry-after': RETRY_AFTER_SECONDS })
    }
    this.#published.inc({ topic }, events.length)
    return outcomes.map((o) => (o as PromiseFulfilledResult<PublishedEvent>).value)
  }
}

/** librdkafka's message.timeout.ms is the same deadline; this one holds even when the client itself stalls. */
async function withDeadline<T> (work: Promise<T>, timeoutMs: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const expired = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new Error(`no acknowledgement within ${timeoutMs} ms`)), timeoutMs)
  })
  try {
    return await Promise.race([work, expired])
  } finally {
    clearTimeout(timer)
  }
}
