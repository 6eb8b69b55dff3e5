import {
  type CheckResult, type Consumer, type ConsumerConfig, type KafkaBatch, type KafkaClient,
  consumerProperties, failureBackoff, fatalErrorWatch, traceConsumed,
} from '@pagestream/core'
import type { FastifyBaseLogger } from 'fastify'
import { Counter, type Registry } from 'prom-client'

/** What one batch of one partition asks to commit: the offset after its last record, once it is handled. */
export type BatchHandler = (batch: KafkaBatch) => Promise<string | undefined>

export interface GroupMemberOptions {
  client: KafkaClient
  topic: string
  groupId: string
  /** group.instance.id for static membership; undefined joins as a dynamic member. */
  instanceId: string | undefined
  log: FastifyBaseLogger
  metrics: Registry
}

/**
 * This replica in the consumer group: one consumer at a time, whose batches go to the handler and
 * are committed after it. A consumer that fails fatally (a static member fenced by a twin with its
 * group.instance.id) can never consume again, so it is counted, reported not ready and replaced.
 */
export class GroupMember {
  /** Partitions owned now; undefined before the group was first joined. */
  partitions: number | undefined
  fatalErrors = 0
  lastError: string | undefined
  readonly #options: GroupMemberOptions
  readonly #handle: BatchHandler
  readonly #fatal: Counter
  readonly #stopping = new AbortController()
  #consumer: Consumer | undefined
  #failed: string | undefined
  #replacing: Promise<void> | undefined
  #failuresInARow = 0

  constructor (options: GroupMemberOptions, handle: BatchHandler) {
    this.#options = options
    this.#handle = handle
    this.#fatal = new Counter({
      name: 'pagestream_consumer_fatal_errors_total',
      help: 'fatal consumer errors (a static member fenced by a twin...), each followed by a new consumer',
      registers: [options.metrics],
    })
  }

  /** Ready when a consumer that can make progress is in the group. */
  readiness (): CheckResult {
    const { groupId } = this.#options
    if (this.#failed !== undefined) {
      return { ok: false, detail: `the consumer failed fatally (${this.#failed}); a new one is joining ${groupId}` }
    }
    if (this.partitions === undefined) return { ok: false, detail: `not yet in group ${groupId}` }
    return { ok: true, detail: `${this.partitions} partition(s) assigned` }
  }

  /** Joins the group with a new consumer and consumes in the background. */
  async start (): Promise<void> {
    const { client, topic, groupId, instanceId, log } = this.#options
    const consumer: Consumer = client.consumer({
      ...consumerProperties({
        groupId,
        rebalance: (kind, assignment) => {
          if (consumer === this.#consumer) this.partitions = kind === 'assign' ? assignment.length : 0
        },
      }),
      ...(instanceId === undefined ? {} : { 'group.instance.id': instanceId }),
      // merged into the client's kafkaJS block (brokers, log level): only the logger is this member's
      kafkaJS: {
        logger: fatalErrorWatch(log, (message) => this.#onFatal(consumer, message)),
      } as ConsumerConfig['kafkaJS'],
    })
    this.#consumer = consumer
    await consumer.connect()
    await consumer.subscribe({ topics: [topic] })
    await consumer.run({
      eachBatch: async ({ batch }) => {
        const next = await traceConsumed(batch, groupId, () => this.#handle(batch))
        if (next !== undefined) {
          await consumer.commitOffsets([{ topic: batch.topic, partition: batch.partition, offset: next }])
        }
        if (consumer === this.#consumer) this.#failuresInARow = 0
      },
    })
  }

  async stop (): Promise<void> {
    this.#stopping.abort()
    await this.#replacing
    const consumer = this.#consumer
    this.#consumer = undefined
    await consumer?.disconnect()
  }

  /** The consumer will never consume again (librdkafka retries nothing after a fatal error): replace it. */
  #onFatal (consumer: Consumer, message: string): void {
    if (consumer !== this.#consumer || this.#failed !== undefined || this.#stopping.signal.aborted) return
    this.#failed = message
    this.lastError = message
    this.fatalErrors++
    this.#failuresInARow++
    this.#fatal.inc()
    this.#options.log.error({ instanceId: this.#options.instanceId, reason: message },
      'fatal consumer error; replacing the consumer (is CONSUMER_INSTANCE_ID unique per replica?)')
    this.#replacing ??= this.#replace().finally(() => { this.#replacing = undefined })
  }

  async #replace (): Promise<void> {
    while (!this.#stopping.signal.aborted && this.#failed !== undefined) {
      const failed = this.#consumer
      this.#consumer = undefined
      this.partitions = undefined
      await failed?.disconnect().catch(() => {})
      await failureBackoff(this.#failuresInARow + 2, this.#stopping.signal)
      if (this.#stopping.signal.aborted) return
      this.#failed = undefined
      try {
        await this.start()
        // a fatal error while it joined leaves #failed set, and the loop replaces this one too
        if (this.#failed === undefined) this.#options.log.warn('a new consumer replaced the one that failed')
      } catch (err) {
        this.#failed = (err as Error).message
        this.lastError = this.#failed
        this.#options.log.warn({ err }, 'could not replace the consumer yet; retrying')
      }
    }
  }
}
