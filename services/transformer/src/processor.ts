import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyBaseLogger } from 'fastify'
import type { KafkaJS } from '@confluentinc/kafka-javascript'
import { type Consumer, type KafkaClient, TransactionalProducer, consumerProperties, failureBackoff } from '@pagestream/core'
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
  /** message.timeout.ms; the transaction timeout is 10 s more, so a stuck send fails the transaction first. */
  deliveryTimeoutMs: number
}

/** What a transaction did, for metrics. */
export interface ProcessorObserver {
  committed(result: { transformed: number, deadLettered: number, seconds: number }): void
  aborted(): void
  producerReplaced(): void
}

export interface ProcessorCounts {
  transformed: number
  deadLettered: number
  transactionsCommitted: number
  transactionsAborted: number
  producerReplacements: number
  timesFenced: number
}

/** Failed transactions in a row after which the role stops calling itself ready. */
const FAILURES_BEFORE_UNREADY = 3
const COMMITTED_OFFSET_TIMEOUT_MS = 5_000
/** Quiet time after the last rebalance before a fenced instance closes its consumer. */
const REBALANCE_SETTLE_MS = 2_000
/** librdkafka can wait forever for a rebalance that arrives while the consumer closes; do not wait with it. */
const CONSUMER_CLOSE_TIMEOUT_MS = 5_000

/**
 * Consume-transform-produce, exactly once: each batch the consumer hands over (one partition,
 * at most `batchSize` records) becomes one Kafka transaction holding the transformed records,
 * the dead letters and the input offset. A failed transaction is aborted and the partition is
 * rewound to the offset the group has committed, so nothing is skipped and nothing is doubled.
 */
export class TransformProcessor {
  readonly counts: ProcessorCounts = { transformed: 0, deadLettered: 0, transactionsCommitted: 0, transactionsAborted: 0, producerReplacements: 0, timesFenced: 0 }
  #producer: TransactionalProducer | undefined
  #consumer: Consumer | undefined
  #assignment: KafkaJS.TopicPartition[] | undefined
  #consecutiveFailures = 0
  #lastError: string | undefined
  #closing = false
  readonly #stopping = new AbortController()
  #batchInFlight = false
  /** Set once fenced: the instance has handed over to the newer one with its transactional.id. */
  #steppingDown: Promise<void> | undefined
  #lastRebalanceAt = 0

  constructor (
    private readonly client: KafkaClient,
    private readonly settings: ProcessorSettings,
    private readonly log: FastifyBaseLogger,
    private readonly observer: ProcessorObserver,
  ) {}

  get transactionalId (): string { return this.settings.instanceId }
  /** Partitions owned now; undefined until the consumer first joined its group. */
  get assignment (): KafkaJS.TopicPartition[] | undefined { return this.#assignment }
  get lastError (): string | undefined { return this.#lastError }
  /** Why transactions cannot be trusted to commit now, or undefined when they can. */
  get problem (): string | undefined {
    if (this.#steppingDown !== undefined) return `fenced by another instance with transactional.id ${this.settings.instanceId}; stepped down (restart this one once the instance ids are unique)`
    if (this.#producer?.ready !== true) return `no transactional producer: ${this.#lastError ?? 'connecting'}`
    if (this.#consecutiveFailures >= FAILURES_BEFORE_UNREADY) return `transactions failing: ${this.#lastError ?? 'unknown'}`
    return undefined
  }

  /** Producer first: initialising transactions aborts whatever a killed predecessor left open. */
  async start (): Promise<void> {
    // a transaction a crashed instance left open (a new pod name never fences it) blocks R3 readers and
    // R1 offsets until the broker aborts it: keep that short, just above the delivery timeout
    this.#producer = await TransactionalProducer.open({
      client: this.client,
      transactionalId: this.settings.instanceId,
      transactionTimeoutMs: this.settings.deliveryTimeoutMs + 10_000,
      deliveryTimeoutMs: this.settings.deliveryTimeoutMs,
      log: this.log,
      closing: this.#stopping.signal,
      failures: () => this.#consecutiveFailures,
      onError: (err) => { this.#lastError = err.message },
      onReplaced: () => {
        this.counts.producerReplacements += 1
        this.observer.producerReplaced()
      },
    })
    const consumer = this.client.consumer({
      ...consumerProperties({
        groupId: this.settings.groupId,
        readCommitted: true,
        rebalance: (kind, partitions) => {
          this.#lastRebalanceAt = Date.now()
          this.#assignment = kind === 'assign' ? partitions.map(({ topic, partition }) => ({ topic, partition })) : []
          this.log.info({ kind, partitions: partitions.map((p) => p.partition) }, 'partitions rebalanced')
        },
      }),
      // static membership: a restarted instance takes its partitions back without waiting for a rebalance
      ...(this.settings.staticMembership ? { 'group.instance.id': this.settings.instanceId } : {}),
      'js.consumer.max.batch.size': this.settings.batchSize,
    })
    this.#consumer = consumer
    await consumer.connect()
    await consumer.subscribe({ topics: [this.settings.inputTopic] })
    await consumer.run({ eachBatch: (payload) => this.#transact(payload.batch) })
  }

  /** Lets the batch in flight finish its transaction, then closes the consumer and the producer. */
  async stop (): Promise<void> {
    this.#closing = true
    this.#stopping.abort()
    this.log.info({ batchInFlight: this.#batchInFlight }, 'stopping the transformer')
    await this.#steppingDown
    await this.#closeClients()
  }

  async #closeClients (): Promise<void> {
    if (this.#consumer !== undefined) await this.#closeConsumer(this.#consumer)
    this.#consumer = undefined
    this.#assignment = undefined
    const producer = this.#producer?.current
    if (producer?.isActive() === true) await producer.abort().catch((err: Error) => this.log.warn({ err }, 'abort on close failed'))
    await this.#producer?.close().catch((err: Error) => this.log.warn({ err }, 'producer close failed'))
  }

  async #closeConsumer (consumer: Consumer): Promise<void> {
    const timer = new AbortController()
    const outcome = await Promise.race([
      consumer.disconnect().then(() => 'closed' as const, (err: Error) => { this.log.warn({ err }, 'consumer close failed'); return 'failed' as const }),
      sleep(CONSUMER_CLOSE_TIMEOUT_MS, 'timed out' as const, { signal: timer.signal }).catch(() => 'closed' as const),
    ])
    timer.abort()
    if (outcome === 'timed out') this.log.error({ timeoutMs: CONSUMER_CLOSE_TIMEOUT_MS }, 'the consumer did not close in time (a rebalance during close?); leaving it behind')
  }

  /**
   * Another instance initialised our transactional.id: two replicas given one TRANSFORMER_INSTANCE_ID,
   * or a paused zombie meeting its successor. Taking over again would fence the other in turn and
   * neither would ever commit, so hand over for good: stop, leave the group, report not ready.
   */
  async #stepDown (): Promise<void> {
    this.log.error({ transactionalId: this.settings.instanceId },
      'fenced by another instance with the same transactional.id; stepping down (is TRANSFORMER_INSTANCE_ID unique per replica?)')
    // the fencing instance is joining the group right now, and closing a consumer in mid-rebalance can hang
    const deadline = Date.now() + 15_000
    while (Date.now() - this.#lastRebalanceAt < REBALANCE_SETTLE_MS && Date.now() < deadline && !this.#closing) {
      await sleep(200, undefined, { signal: this.#stopping.signal }).catch(() => {})
    }
    await this.#closeClients()
  }

  async #transact (batch: KafkaJS.Batch): Promise<void> {
    const { topic, partition, messages } = batch
    const transactional = this.#producer
    const producer = transactional?.current
    const consumer = this.#consumer
    if (transactional === undefined || producer === undefined || consumer === undefined || messages.length === 0) return
    if (this.#steppingDown !== undefined) {
      // handed over: leave the batch unconsumed, for whoever owns the partition next
      consumer.seek({ topic, partition, offset: batch.firstOffset() ?? '0' })
      return
    }
    const work = transformBatch(topic, partition, messages)
    const started = performance.now()
    this.#batchInFlight = true
    try {
      await producer.transaction()
      const topicMessages = [
        { topic: this.settings.outputTopic, messages: work.outputs },
        { topic: this.settings.deadLetterTopic, messages: work.deadLetters },
      ].filter((entry) => entry.messages.length > 0)
      await producer.sendBatch({ topicMessages })
      await producer.sendOffsets({ consumer, topics: [{ topic, partitions: [{ partition, offset: work.nextOffset }] }] })
      await transactional.commit()
    } catch (err) {
      await this.#recover(transactional, batch, err as Error)
      return
    } finally {
      this.#batchInFlight = false
    }
    this.#consecutiveFailures = 0
    this.counts.transformed += work.outputs.length
    this.counts.deadLettered += work.deadLetters.length
    this.counts.transactionsCommitted += 1
    this.observer.committed({ transformed: work.outputs.length, deadLettered: work.deadLetters.length, seconds: (performance.now() - started) / 1000 })
  }

  /**
   * Aborts (or, when the producer is no longer usable, replaces it, which also settles a
   * transaction whose commit outcome is unknown), then rewinds the partition to the committed
   * offset: asking the group, not assuming, because a commit that reported a timeout may have landed.
   */
  async #recover (transactional: TransactionalProducer, batch: KafkaJS.Batch, err: Error): Promise<void> {
    const { topic, partition } = batch
    this.#consecutiveFailures += 1
    this.#lastError = err.message
    this.counts.transactionsAborted += 1
    this.observer.aborted()
    this.log.warn({ err, topic, partition, firstOffset: batch.firstOffset(), records: batch.messages.length }, 'transaction failed; aborting and rewinding to the committed offset')
    const outcome = await transactional.abortOrReplace(err)
    if (outcome === 'fenced') {
      this.counts.timesFenced += 1
      // the consumer cannot be closed from inside its own batch handler
      this.#steppingDown = new Promise<void>((resolve) => { setImmediate(resolve) }).then(() => this.#stepDown())
      const offset = batch.firstOffset()
      if (offset !== null) this.#consumer?.seek({ topic, partition, offset })
      return
    }
    const offset = await this.#committedOffset(topic, partition, batch.firstOffset() ?? '0')
    if (offset !== undefined) this.#consumer?.seek({ topic, partition, offset })
    await this.#backoff()
  }

  async #committedOffset (topic: string, partition: number, fallback: string): Promise<string | undefined> {
    while (!this.#closing && this.#consumer !== undefined) {
      try {
        const [committed] = await this.#consumer.committed([{ topic, partition }], COMMITTED_OFFSET_TIMEOUT_MS)
        const offset = committed?.offset
        // no committed offset yet: every earlier batch of this partition failed too, so start where this one did
        return offset === undefined || BigInt(offset) < 0n ? fallback : offset
      } catch (err) {
        this.#lastError = (err as Error).message
        this.log.warn({ err, topic, partition }, 'could not read the committed offset; retrying')
        await this.#backoff()
      }
    }
    return undefined
  }

  async #backoff (): Promise<void> {
    await failureBackoff(this.#consecutiveFailures, this.#stopping.signal)
  }
}
