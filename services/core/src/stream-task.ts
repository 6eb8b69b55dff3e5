import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyBaseLogger } from 'fastify'
import type { KafkaJS } from '@confluentinc/kafka-javascript'
import { type Consumer, type KafkaClient, type KafkaMessage, consumerProperties } from './kafka.js'
import { TransactionalProducer, failureBackoff } from './transactional-producer.js'
import { fatalErrorWatch } from './consumer-failure.js'

/** A record a batch function asks to write; `partition` unset: the producer's partitioner places it by key. */
export interface OutgoingRecord {
  key: string | Buffer | null
  value: string | Buffer | null
  partition?: number
  timestamp?: string
  headers?: KafkaJS.IHeaders
}

/** What one input batch becomes: records per topic, dead letters, and the input offset to commit. */
export interface BatchResult {
  outputs: Array<{ topic: string, messages: OutgoingRecord[] }>
  deadLetters: OutgoingRecord[]
  /** One past the last input record of the batch. */
  nextOffset: string
}

/** The role's own part: a pure function of one partition's batch (it must not throw for bad records). */
export type BatchFunction = (topic: string, partition: number, messages: KafkaMessage[]) => BatchResult

export interface StreamTaskSettings {
  /** For logs: 'transformer', 'repartition'. */
  name: string
  inputTopic: string
  deadLetterTopic: string
  groupId: string
  /** transactional.id (and group.instance.id when static): stable per instance, so a restart fences its zombie. */
  transactionalId: string
  /** Join as a static group member named transactionalId (no rebalance when the same instance comes back). */
  staticMembership: boolean
  /** Most input records one transaction carries. */
  batchSize: number
  /** message.timeout.ms; the transaction timeout is 10 s more, so a stuck send fails the transaction first. */
  deliveryTimeoutMs: number
  /** The setting that names the instance, for the step-down advice in logs and readiness. */
  instanceVariable: string
  /** Longest wait for the consumer to close (default 5 s). */
  consumerCloseTimeoutMs?: number
}

/** What a transaction did, for metrics. */
export interface StreamTaskObserver {
  committed(result: { written: number, deadLettered: number, seconds: number }): void
  aborted(): void
  producerReplaced(): void
  consumerFailed(): void
}

export interface StreamTaskCounts {
  /** Records written to the outputs (committed transactions only). */
  written: number
  deadLettered: number
  transactionsCommitted: number
  transactionsAborted: number
  producerReplacements: number
  timesFenced: number
  /** Fatal consumer errors (a static member fenced by a twin with its id...), each followed by new clients. */
  consumerFatalErrors: number
}

/** Failed transactions in a row after which the task stops calling itself ready. */
const FAILURES_BEFORE_UNREADY = 3
const COMMITTED_OFFSET_TIMEOUT_MS = 5_000
/** Quiet time after the last rebalance before a fenced instance closes its consumer. */
const REBALANCE_SETTLE_MS = 2_000
/** librdkafka can wait forever for a rebalance that arrives while the consumer closes; do not wait with it. */
const CONSUMER_CLOSE_TIMEOUT_MS = 5_000
/**
 * Consume-transform-produce, exactly once: each batch the consumer hands over (one partition, at
 * most `batchSize` records) becomes one Kafka transaction holding what the batch function made of
 * it and the input offset. A failed transaction is aborted and the partition is rewound to the
 * offset the group has committed, so nothing is skipped and nothing is doubled. Fenced as a
 * producer, the task steps down; a fatal consumer error makes it start over with new clients.
 */
export class StreamTask {
  readonly counts: StreamTaskCounts = {
    written: 0,
    deadLettered: 0,
    transactionsCommitted: 0,
    transactionsAborted: 0,
    producerReplacements: 0,
    timesFenced: 0,
    consumerFatalErrors: 0,
  }

  #producer: TransactionalProducer | undefined
  #consumer: Consumer | undefined
  #assignment: KafkaJS.TopicPartition[] | undefined
  #consecutiveFailures = 0
  #fatalInARow = 0
  #lastError: string | undefined
  #closing = false
  readonly #stopping = new AbortController()
  #batchInFlight = false
  /** Set once fenced: the instance has handed over to the newer one with its transactional.id. */
  #steppingDown: Promise<void> | undefined
  /** Set while new clients replace a consumer that failed fatally. */
  #restarting: Promise<void> | undefined
  #lastRebalanceAt = 0

  constructor (
    private readonly client: KafkaClient,
    private readonly settings: StreamTaskSettings,
    private readonly process: BatchFunction,
    private readonly log: FastifyBaseLogger,
    private readonly observer: StreamTaskObserver,
  ) {}

  get transactionalId (): string { return this.settings.transactionalId }
  /** Partitions owned now; undefined until the consumer joined its group (again). */
  get assignment (): KafkaJS.TopicPartition[] | undefined { return this.#assignment }
  get lastError (): string | undefined { return this.#lastError }
  get batchInFlight (): boolean { return this.#batchInFlight }
  /** Why the task cannot make progress now, or undefined when it can. */
  get problem (): string | undefined {
    const { transactionalId, instanceVariable } = this.settings
    if (this.#steppingDown !== undefined) {
      return `fenced by another instance with transactional.id ${transactionalId}; ` +
        `stepped down (restart this one once ${instanceVariable} is unique per replica)`
    }
    const lastError = this.#lastError ?? 'unknown'
    if (this.#restarting !== undefined) {
      return `the consumer failed fatally (${lastError}); starting over with new clients`
    }
    if (this.#producer?.ready !== true) return `no transactional producer: ${this.#lastError ?? 'connecting'}`
    if (this.#consecutiveFailures >= FAILURES_BEFORE_UNREADY) return `transactions failing: ${lastError}`
    return undefined
  }

  /** Producer first: initialising transactions aborts whatever a killed predecessor left open. */
  async start (): Promise<void> {
    // a transaction a crashed instance left open (a new pod name never fences it) blocks readers and
    // input offsets until the broker aborts it: keep that short, just above the delivery timeout
    this.#producer = await TransactionalProducer.open({
      client: this.client,
      transactionalId: this.settings.transactionalId,
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
          if (consumer !== this.#consumer) return
          this.#lastRebalanceAt = Date.now()
          this.#assignment = kind === 'assign' ? partitions.map(({ topic, partition }) => ({ topic, partition })) : []
          this.log.info({ kind, partitions: partitions.map((p) => p.partition) }, 'partitions rebalanced')
        },
      }),
      // static membership: a restarted instance takes its partitions back without waiting for a rebalance
      ...(this.settings.staticMembership ? { 'group.instance.id': this.settings.transactionalId } : {}),
      'js.consumer.max.batch.size': this.settings.batchSize,
      // merged into the client's kafkaJS block (brokers, log level): only the logger is the task's
      kafkaJS: { logger: this.#consumerLogger(() => consumer) } as KafkaJS.ConsumerConfig,
    })
    this.#consumer = consumer
    await consumer.connect()
    await consumer.subscribe({ topics: [this.settings.inputTopic] })
    await consumer.run({ eachBatch: (payload) => this.#transact(consumer, payload.batch) })
  }

  /** Lets the batch in flight finish its transaction, then closes the consumer and the producer. */
  async stop (): Promise<void> {
    this.#closing = true
    this.#stopping.abort()
    this.log.info({ batchInFlight: this.#batchInFlight }, `stopping the ${this.settings.name}`)
    await this.#steppingDown
    await this.#restarting
    await this.#closeClients()
  }

  /** The consumer's log lines go to the task's log; a fatal error among them makes the task start over. */
  #consumerLogger (consumer: () => Consumer): KafkaJS.Logger {
    return fatalErrorWatch(this.log, (message) => { this.#onFatal(consumer(), message) })
  }

  /**
   * The consumer is unusable (librdkafka retries nothing after a fatal error): not ready, counted,
   * then new clients after a backoff. A static member fenced by a live twin fences it back in turn,
   * but the twins settle: the first of them whose transaction finds its producer fenced steps down.
   */
  #onFatal (consumer: Consumer, message: string): void {
    if (consumer !== this.#consumer || this.#closing) return
    if (this.#steppingDown !== undefined || this.#restarting !== undefined) return
    this.counts.consumerFatalErrors += 1
    this.#fatalInARow += 1
    // the client's line can carry a stack trace: its first line says enough
    this.#lastError = message.split('\n')[0]
    this.observer.consumerFailed()
    this.log.error({ transactionalId: this.settings.transactionalId },
      `fatal consumer error; starting over with new clients (is ${this.settings.instanceVariable} unique per replica?)`)
    this.#restarting = this.#restart().finally(() => { this.#restarting = undefined })
  }

  async #restart (): Promise<void> {
    await new Promise((resolve) => { setImmediate(resolve) })
    await this.#closeClients()
    while (!this.#closing && this.#steppingDown === undefined) {
      await failureBackoff(this.#fatalInARow + 2, this.#stopping.signal)
      if (this.#closing) return
      try {
        await this.start()
        this.log.warn('started over with new clients after a fatal consumer error')
        return
      } catch (err) {
        this.#lastError = (err as Error).message
        this.log.warn({ err }, 'could not start over yet; retrying')
        await this.#closeClients()
      }
    }
  }

  async #closeClients (): Promise<void> {
    const consumer = this.#consumer
    this.#consumer = undefined
    this.#assignment = undefined
    if (consumer !== undefined) await this.#closeConsumer(consumer)
    const transactional = this.#producer
    this.#producer = undefined
    const producer = transactional?.current
    if (producer?.isActive() === true) {
      await producer.abort().catch((err: Error) => this.log.warn({ err }, 'abort on close failed'))
    }
    await transactional?.close().catch((err: Error) => this.log.warn({ err }, 'producer close failed'))
  }

  async #closeConsumer (consumer: Consumer): Promise<void> {
    const timeoutMs = this.settings.consumerCloseTimeoutMs ?? CONSUMER_CLOSE_TIMEOUT_MS
    const timer = new AbortController()
    const outcome = await Promise.race([
      consumer.disconnect().then(() => 'closed' as const, (err: Error) => {
        this.log.warn({ err }, 'consumer close failed')
        return 'failed' as const
      }),
      sleep(timeoutMs, 'timed out' as const, { signal: timer.signal }).catch(() => 'closed' as const),
    ])
    timer.abort()
    if (outcome === 'timed out') {
      this.log.error({ timeoutMs }, 'the consumer did not close in time (a rebalance during close?); leaving it behind')
    }
  }

  /**
   * Another instance initialised our transactional.id: two replicas given one instance id, or a
   * paused zombie meeting its successor. Taking over again would fence the other in turn and
   * neither would ever commit, so hand over for good: stop, leave the group, report not ready.
   */
  async #stepDown (): Promise<void> {
    this.log.error({ transactionalId: this.settings.transactionalId },
      'fenced by another instance with the same transactional.id; ' +
      `stepping down (is ${this.settings.instanceVariable} unique per replica?)`)
    // the fencing instance is joining the group right now, and closing a consumer in mid-rebalance can hang
    const deadline = Date.now() + 15_000
    while (Date.now() - this.#lastRebalanceAt < REBALANCE_SETTLE_MS && Date.now() < deadline && !this.#closing) {
      await sleep(200, undefined, { signal: this.#stopping.signal }).catch(() => {})
    }
    await this.#closeClients()
  }

  async #transact (consumer: Consumer, batch: KafkaJS.Batch): Promise<void> {
    const { topic, partition, messages } = batch
    const transactional = this.#producer
    const producer = transactional?.current
    if (transactional === undefined || producer === undefined || consumer !== this.#consumer) return
    if (messages.length === 0) return
    if (this.#steppingDown !== undefined || this.#restarting !== undefined) {
      // handed over: leave the batch unconsumed, for whoever owns the partition next
      consumer.seek({ topic, partition, offset: batch.firstOffset() ?? '0' })
      return
    }
    const work = this.process(topic, partition, messages)
    const outputs = work.outputs.filter((entry) => entry.messages.length > 0)
    if (work.deadLetters.length > 0) outputs.push({ topic: this.settings.deadLetterTopic, messages: work.deadLetters })
    const written = work.outputs.reduce((sum, entry) => sum + entry.messages.length, 0)
    const started = performance.now()
    this.#batchInFlight = true
    try {
      await producer.transaction()
      if (outputs.length > 0) await producer.sendBatch({ topicMessages: outputs as KafkaJS.TopicMessages[] })
      const partitions = [{ partition, offset: work.nextOffset }]
      await producer.sendOffsets({ consumer, topics: [{ topic, partitions }] })
      await transactional.commit()
    } catch (err) {
      await this.#recover(consumer, transactional, batch, err as Error)
      return
    } finally {
      this.#batchInFlight = false
    }
    this.#consecutiveFailures = 0
    this.#fatalInARow = 0
    this.counts.written += written
    this.counts.deadLettered += work.deadLetters.length
    this.counts.transactionsCommitted += 1
    const seconds = (performance.now() - started) / 1000
    this.observer.committed({ written, deadLettered: work.deadLetters.length, seconds })
  }

  /**
   * Aborts (or, when the producer is no longer usable, replaces it, which also settles a
   * transaction whose commit outcome is unknown), then rewinds the partition to the committed
   * offset: asking the group, not assuming, because a commit that reported a timeout may have landed.
   */
  async #recover (
    consumer: Consumer, transactional: TransactionalProducer, batch: KafkaJS.Batch, err: Error,
  ): Promise<void> {
    const { topic, partition } = batch
    this.#consecutiveFailures += 1
    this.#lastError = err.message
    this.counts.transactionsAborted += 1
    this.observer.aborted()
    this.log.warn({ err, topic, partition, firstOffset: batch.firstOffset(), records: batch.messages.length },
      'transaction failed; aborting and rewinding to the committed offset')
    const outcome = await transactional.abortOrReplace(err)
    if (outcome === 'fenced') {
      this.counts.timesFenced += 1
      // the consumer cannot be closed from inside its own batch handler
      this.#steppingDown = new Promise<void>((resolve) => { setImmediate(resolve) }).then(() => this.#stepDown())
      const offset = batch.firstOffset()
      if (offset !== null) consumer.seek({ topic, partition, offset })
      return
    }
    const offset = await this.#committedOffset(consumer, topic, partition, batch.firstOffset() ?? '0')
    if (offset !== undefined) consumer.seek({ topic, partition, offset })
    await this.#backoff()
  }

  async #committedOffset (
    consumer: Consumer, topic: string, partition: number, fallback: string,
  ): Promise<string | undefined> {
    while (!this.#closing && consumer === this.#consumer) {
      try {
        const [committed] = await consumer.committed([{ topic, partition }], COMMITTED_OFFSET_TIMEOUT_MS)
        const offset: string | null | undefined = committed?.offset
        // no committed offset yet (null, or librdkafka's -1001): every earlier batch of this partition
        // failed too, so start where this one did
        return offset === undefined || offset === null || BigInt(offset) < 0n ? fallback : offset
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
