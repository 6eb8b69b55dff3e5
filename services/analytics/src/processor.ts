import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyBaseLogger } from 'fastify'
import { Counter, Gauge, Histogram, type Registry } from 'prom-client'
import {
  type Consumer, type KafkaClient, type KafkaMessage,
  InvalidPageEventError, TransactionalProducer, consumerProperties, deadLetterMessage, decodePageEvent, eventTime, failureBackoff,
} from '@pagestream/core'
import type { KafkaJS } from '@confluentinc/kafka-javascript'
import { PartitionReader } from './partition-reader.js'
import { SerialQueue } from './serial-queue.js'
import { PartitionWindows, STREAM_TIME_KEY } from './window-store.js'
import { type WindowSpec, encodeWindowState, windowKey, windowRecord } from './windows.js'

export interface ProcessorTopics {
  input: string
  output: string
  changelog: string
  late: string
  deadLetter: string
}

export interface ProcessorOptions {
  client: KafkaClient
  /** librdkafka connection properties, for the changelog reader. */
  connection: Record<string, string>
  log: FastifyBaseLogger
  metrics: Registry
  topics: ProcessorTopics
  groupId: string
  instanceId: string
  staticMembership: boolean
  spec: WindowSpec
  longViewThresholdMs: number
  /** Events dated further ahead of the wall clock are dead letters; 0: no limit. */
  maxFutureMs: number
  commitIntervalMs: number
}

interface OutgoingMessage {
  key: string | Buffer | null
  value: string | Buffer | null
  partition?: number
  headers?: Record<string, string | Buffer | (string | Buffer)[] | undefined>
}

/** Everything this instance holds for one owned input partition. */
interface OwnedPartition {
  windows: PartitionWindows
  /** Late and dead-letter records waiting for the next transaction. */
  side: Array<{ topic: string, message: OutgoingMessage }>
  /** Offset to commit with the next transaction (last processed + 1). */
  nextOffset: string | undefined
}

export interface RestoreReport { partitions: number[], records: number, windows: number, ms: number }

/** Tries of one commit that fails with a retriable error, before the transaction is aborted. */
const COMMIT_ATTEMPTS = 3
/** Failed transactions in a row after which the processor stops calling itself ready. */
const FAILURES_BEFORE_UNREADY = 3
/** Quiet time after the last rebalance before a fenced instance closes its consumer. */
const REBALANCE_SETTLE_MS = 2_000
/** librdkafka can wait forever for a rebalance that arrives while the consumer closes; do not wait with it. */
const CONSUMER_CLOSE_TIMEOUT_MS = 5_000

export const LATE_HEADERS = { streamTime: 'late-stream-time', missed: 'late-windows-missed' } as const

/**
 * R2 -> R4 with exactly-once state. Every commit interval one transaction carries the window
 * updates and finals (R4), the changelog records, late and dead-letter records, and the input
 * offsets. On failure the transaction is aborted and this instance rewinds to its last commit:
 * state rebuilt from the changelog, consumer seeked back to the committed offsets.
 */
export class WindowProcessor {
  readonly #options: ProcessorOptions
  readonly #log: FastifyBaseLogger
  readonly #queue = new SerialQueue()
  readonly #owned = new Map<number, OwnedPartition>()
  #consumer: Consumer | undefined
  #producer: TransactionalProducer | undefined
  #reader: PartitionReader | undefined
  #timer: NodeJS.Timeout | undefined
  #joined = false
  #restoring = false
  /** Assigned partitions whose state could not be restored yet. */
  readonly #unrestored = new Set<number>()
  #stopping = false
  #stopResult: Promise<void> | undefined
  readonly #stopped = new AbortController()
  #consecutiveFailures = 0
  #lastError: string | undefined
  /** Set once fenced: this instance handed over to the newer one with its transactional.id. */
  #steppingDown: Promise<void> | undefined
  #lastRebalanceAt = 0
  lastRestore: RestoreReport | undefined

  readonly #events: Counter
  readonly #late: Counter
  readonly #deadLetters: Counter
  readonly #transactions: Counter<'result'>
  readonly #restoreSeconds: Histogram
  readonly #openWindows: Gauge

  constructor (options: ProcessorOptions) {
    this.#options = options
    this.#log = options.log
    const registers = [options.metrics]
    this.#events = new Counter({ name: 'analytics_events_total', help: 'events counted into windows', registers })
    this.#late = new Counter({ name: 'analytics_late_events_total', help: 'events that arrived after a window of theirs had closed (sent to the late topic)', registers })
    this.#deadLetters = new Counter({ name: 'analytics_dead_letters_total', help: 'malformed input records sent to the dead-letter topic', registers })
    this.#transactions = new Counter({ name: 'analytics_transactions_total', help: 'transactions by result', labelNames: ['result'], registers })
    this.#restoreSeconds = new Histogram({ name: 'analytics_restore_seconds', help: 'time to restore owned partitions from the changelog', buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 30], registers })
    this.#openWindows = new Gauge({
      name: 'analytics_open_windows',
      help: 'windows held in memory',
      registers,
      collect: () => { this.#openWindows.set([...this.#owned.values()].reduce((sum, owned) => sum + owned.windows.windows.size, 0)) },
    })
  }

  get transactionalId (): string {
    return `${this.#options.groupId}-${this.#options.instanceId}`
  }

  /** Ready once the group gave this instance its partitions (possibly none) and their state is restored. */
  readiness (): { ok: boolean, detail?: string } {
    if (this.#steppingDown !== undefined) {
      return { ok: false, detail: `fenced by another instance with transactional.id ${this.transactionalId}; stepped down (restart this one once ANALYTICS_INSTANCE_ID is unique per replica)` }
    }
    if (this.#producer?.ready !== true) return { ok: false, detail: `no transactional producer: ${this.#lastError ?? 'connecting'}` }
    if (this.#consecutiveFailures >= FAILURES_BEFORE_UNREADY) return { ok: false, detail: `${this.#consecutiveFailures} transactions failed in a row: ${this.#lastError ?? 'unknown'}` }
    if (!this.#joined) return { ok: false, detail: 'waiting for a partition assignment' }
    if (this.#restoring) return { ok: false, detail: 'restoring window state from the changelog' }
    if (this.#unrestored.size > 0) return { ok: false, detail: `state of partitions [${[...this.#unrestored].join(',')}] not restored yet` }
    return { ok: true, detail: `owns partitions [${[...this.#owned.keys()].sort((a, b) => a - b).join(',')}]` }
  }

  ownedPartitions (): number[] {
    return [...this.#owned.keys()]
  }

  async start (): Promise<void> {
    const { client, topics, groupId, instanceId } = this.#options
    this.#reader = await PartitionReader.connect(this.#options.connection, `${groupId}-restore-${instanceId}`, 10)
    // opening runs initTransactions: it fences an earlier incarnation and aborts its open transaction
    this.#producer = await TransactionalProducer.open({
      client,
      transactionalId: this.transactionalId,
      log: this.#log,
      closing: this.#stopped.signal,
      failures: () => this.#consecutiveFailures,
      commitAttempts: COMMIT_ATTEMPTS,
      onError: (err) => { this.#lastError = err.message },
    })
    const consumer = client.consumer({
      ...consumerProperties({ groupId, rebalance: (kind, partitions) => this.#rebalance(kind, partitions) }),
      'js.consumer.max.batch.size': 2_000,
      // incremental rebalances: a joining or leaving replica moves only the partitions that change
      // owner, the others go on without a restore (revoke and assign below handle only the partitions given)
      'partition.assignment.strategy': 'cooperative-sticky',
      // static membership: a restarted replica takes its partitions back at once, without a rebalance
      ...(this.#options.staticMembership ? { 'group.instance.id': this.transactionalId } : {}),
    } as KafkaJS.ConsumerConstructorConfig)
    this.#consumer = consumer
    await consumer.connect()
    await consumer.subscribe({ topics: [topics.input] })
    await consumer.run({ eachBatch: (payload) => this.#onBatch(payload) })
    this.#scheduleCommit()
  }

  /** Commits what was processed, then closes; a second call waits for the first. */
  stop (): Promise<void> {
    this.#stopResult ??= this.#stop()
    return this.#stopResult
  }

  async #stop (): Promise<void> {
    this.#stopping = true
    this.#stopped.abort()
    clearTimeout(this.#timer)
    await this.#steppingDown
    await this.#queue.run(() => this.#commit()).catch((err: Error) => { this.#log.warn({ err }, 'last commit failed') })
    await this.#closeClients()
    await this.#reader?.disconnect()
  }

  async #closeClients (): Promise<void> {
    const consumer = this.#consumer
    this.#consumer = undefined
    if (consumer !== undefined) {
      const timer = new AbortController()
      const outcome = await Promise.race([
        consumer.disconnect().then(() => 'closed' as const, (err: Error) => { this.#log.warn({ err }, 'consumer disconnect failed'); return 'failed' as const }),
        sleep(CONSUMER_CLOSE_TIMEOUT_MS, 'timed out' as const, { signal: timer.signal }).catch(() => 'closed' as const),
      ])
      timer.abort()
      if (outcome === 'timed out') this.#log.error({ timeoutMs: CONSUMER_CLOSE_TIMEOUT_MS }, 'the consumer did not close in time (a rebalance during close?); leaving it behind')
    }
    await this.#producer?.close().catch((err: Error) => { this.#log.warn({ err }, 'producer disconnect failed') })
  }

  /**
   * Another instance initialised our transactional.id: two replicas given one ANALYTICS_INSTANCE_ID,
   * or a paused zombie meeting its successor. Taking over again would fence the other in turn and
   * neither would ever commit, so hand over for good: not ready, no more commits, leave the group.
   */
  async #stepDown (): Promise<void> {
    this.#log.error({ transactionalId: this.transactionalId },
      'fenced by another instance with the same transactional.id; stepping down (is ANALYTICS_INSTANCE_ID unique per replica?)')
    clearTimeout(this.#timer)
    // the fencing instance is joining the group right now, and closing a consumer in mid-rebalance can hang
    const deadline = Date.now() + 15_000
    while (Date.now() - this.#lastRebalanceAt < REBALANCE_SETTLE_MS && Date.now() < deadline && !this.#stopping) {
      await sleep(200, undefined, { signal: this.#stopped.signal }).catch(() => {})
    }
    await this.#closeClients()
    await this.#queue.run(async () => {
      this.#owned.clear()
      this.#unrestored.clear()
    })
    this.#log.warn('stepped down: left the group and closed the transactional producer')
  }

  #scheduleCommit (): void {
    if (this.#stopping || this.#steppingDown !== undefined) return
    this.#timer = setTimeout(() => {
      this.#queue.run(() => this.#commit())
        .catch((err: Error) => { this.#log.error({ err }, 'commit cycle failed') })
        .finally(() => { this.#scheduleCommit() })
    }, this.#options.commitIntervalMs)
  }

  async #onBatch (payload: KafkaJS.EachBatchPayload): Promise<void> {
    await this.#queue.run(() => {
      // a rewind seeked this partition back: these messages come again from the committed offset
      if (this.#stopping || this.#steppingDown !== undefined || payload.isStale()) return
      const { batch } = payload
      const owned = this.#owned.get(batch.partition)
      if (owned === undefined) return
      for (const message of batch.messages) this.#process(owned, batch.partition, message)
      owned.windows.closeExpired()
      owned.nextOffset = String(Number(batch.lastOffset()) + 1)
    })
  }

  #process (owned: OwnedPartition, partition: number, message: KafkaMessage): void {
    const { topics } = this.#options
    let event
    try {
      event = decodePageEvent(message.value)
      const { maxFutureMs } = this.#options
      if (maxFutureMs > 0 && eventTime(event) > Date.now() + maxFutureMs) {
        // stream time would jump ahead and close every window of the partition at once
        throw new InvalidPageEventError('date', `must not be more than ${maxFutureMs} ms ahead of the clock (got ${event.date})`)
      }
    } catch (err) {
      owned.side.push({ topic: topics.deadLetter, message: deadLetterMessage({ topic: topics.input, partition, message }, err as Error, { role: 'analytics', consumerGroup: this.#options.groupId }) })
      this.#deadLetters.inc()
      return
    }
    // stream time never passes the wall clock, whatever the date of an event within maxFutureMs
    const { missed } = owned.windows.add(event, Date.now())
    this.#events.inc()
    if (missed > 0) {
      owned.side.push({
        topic: topics.late,
        message: {
          key: message.key,
          value: message.value,
          headers: {
            ...(message.headers ?? {}),
            [LATE_HEADERS.streamTime]: new Date(owned.windows.streamTime).toISOString(),
            [LATE_HEADERS.missed]: String(missed),
          },
        },
      })
      this.#late.inc()
    }
  }

  /** One transaction: R4 updates and finals, changelog, side outputs, input offsets. */
  async #commit (): Promise<void> {
    const transactional = this.#producer
    const producer = transactional?.current
    const consumer = this.#consumer
    if (transactional === undefined || producer === undefined || consumer === undefined || this.#steppingDown !== undefined) return
    if (this.#unrestored.size > 0) await this.#retryRestore()
    const work = [...this.#owned].filter(([, owned]) => owned.windows.hasPending() || owned.side.length > 0 || owned.nextOffset !== undefined)
    if (work.length === 0) return
    const { topics } = this.#options
    const output: OutgoingMessage[] = []
    const changelog: OutgoingMessage[] = []
    const side = new Map<string, OutgoingMessage[]>()
    const offsets: Array<{ partition: number, offset: string }> = []
    for (const [partition, owned] of work) {
      const { updated, closed, streamTime } = owned.windows.pending()
      for (const window of updated) {
        output.push({ key: window.page, value: JSON.stringify(windowRecord(window, false)) })
        changelog.push({ key: windowKey(window.page, window.start), value: encodeWindowState(window), partition })
      }
      for (const window of closed) {
        output.push({ key: window.page, value: JSON.stringify(windowRecord(window, true)) })
        // the window is final: prune it from the changelog so compaction drops it
        changelog.push({ key: windowKey(window.page, window.start), value: null, partition })
      }
      if (streamTime !== undefined) changelog.push({ key: STREAM_TIME_KEY, value: String(streamTime), partition })
      for (const { topic, message } of owned.side) side.set(topic, [...(side.get(topic) ?? []), message])
      if (owned.nextOffset !== undefined) offsets.push({ partition, offset: owned.nextOffset })
    }
    const topicMessages = [
      { topic: topics.output, messages: output },
      { topic: topics.changelog, messages: changelog },
      ...[...side].map(([topic, messages]) => ({ topic, messages })),
    ].filter((entry) => entry.messages.length > 0)
    try {
      await producer.transaction()
      if (topicMessages.length > 0) await producer.sendBatch({ topicMessages: topicMessages as KafkaJS.TopicMessages[] })
      if (offsets.length > 0) await producer.sendOffsets({ consumer, topics: [{ topic: topics.input, partitions: offsets }] })
      await transactional.commit()
    } catch (err) {
      this.#transactions.inc({ result: 'aborted' })
      this.#consecutiveFailures += 1
      this.#lastError = (err as Error).message
      this.#log.warn({ err, partitions: work.map(([p]) => p) }, 'transaction failed: aborting and rewinding to the last commit')
      const outcome = await transactional.abortOrReplace(err as Error)
      if (outcome === 'fenced') {
        // the consumer cannot be closed while this commit holds the queue its rebalance callback needs
        this.#steppingDown = new Promise<void>((resolve) => { setImmediate(resolve) }).then(() => this.#stepDown())
        return
      }
      // shutting down: the next owner (or this instance's restart) restores from the last commit anyway
      if (outcome === 'closing' || this.#stopping) return
      await this.#rewind()
      await this.#backoff()
      return
    }
    this.#consecutiveFailures = 0
    this.#transactions.inc({ result: 'committed' })
    for (const [, owned] of work) {
      owned.windows.committed()
      owned.side = []
      owned.nextOffset = undefined
    }
  }

  async #backoff (): Promise<void> {
    await failureBackoff(this.#consecutiveFailures, this.#stopped.signal)
  }

  /**
   * Back to the last commit: the committed offsets asked from the group, then the state from the
   * changelog, then the consumer seeked to those offsets. Asked, not remembered: a commit that
   * reported a timeout may have landed (librdkafka goes on committing in the background, and a
   * replacement producer's initTransactions completes it), and then the changelog holds it too.
   * The group answers require-stable under read_committed, so a commit still settling is waited
   * for instead of reported half done. A partition that cannot be rewound now is dropped and
   * restored again at the next commit interval, like one whose assignment could not be restored.
   */
  async #rewind (): Promise<void> {
    const partitions = [...this.#owned.keys()]
    if (partitions.length === 0) return
    try {
      await this.#take(partitions, 'rewound')
    } catch (err) {
      for (const partition of partitions) {
        this.#owned.delete(partition)
        this.#unrestored.add(partition)
      }
      this.#log.error({ err, partitions }, 'rewinding to the last commit failed; restoring again at the next commit interval')
    }
  }

  #seek (partition: number, offset: string | null): void {
    // -2 is librdkafka's "beginning", what auto.offset.reset=earliest does for a fresh group
    this.#consumer?.seek({ topic: this.#options.topics.input, partition, offset: offset ?? '-2' })
  }

  #rebalance (kind: 'assign' | 'revoke', assignment: KafkaJS.TopicPartition[]): Promise<void> {
    const partitions = assignment.filter((tp) => tp.topic === this.#options.topics.input).map((tp) => tp.partition)
    this.#lastRebalanceAt = Date.now()
    return this.#queue.run(async () => {
      // eager or cooperative, `partitions` are exactly those that change hands: the others are kept as they are
      if (kind === 'revoke') {
        // uncommitted work is dropped: the next owner starts from the last commit, state and offsets alike
        for (const partition of partitions) {
          this.#owned.delete(partition)
          this.#unrestored.delete(partition)
        }
        this.#log.info({ partitions }, 'partitions revoked')
        return
      }
      this.#restoring = true
      try {
        await this.#take(partitions)
      } catch (err) {
        // their batches are skipped until a later commit cycle restores them
        for (const partition of partitions) this.#unrestored.add(partition)
        this.#log.error({ err, partitions }, 'restoring assigned partitions failed; retrying at the next commit interval')
      } finally {
        this.#restoring = false
        this.#joined = true
      }
    })
  }

  /** Restores partitions and positions the consumer at their committed offsets. */
  async #take (partitions: number[], why: 'assigned' | 'rewound' = 'assigned'): Promise<void> {
    const committed = await this.#committedOffsets(partitions)
    await this.#restore(partitions)
    // start exactly where the restored state ends, whatever seek an earlier rewind left pending
    for (const [partition, offset] of committed) this.#seek(partition, offset)
    this.#log.info({ partitions, offsets: Object.fromEntries(committed) }, `partitions ${why}`)
  }

  async #retryRestore (): Promise<void> {
    const topic = this.#options.topics.input
    const assigned = new Set((this.#consumer?.assignment() ?? []).filter((tp) => tp.topic === topic).map((tp) => tp.partition))
    const partitions = [...this.#unrestored].filter((partition) => assigned.has(partition))
    this.#unrestored.clear()
    if (partitions.length === 0) return
    try {
      await this.#take(partitions)
    } catch (err) {
      for (const partition of partitions) this.#unrestored.add(partition)
      this.#log.error({ err, partitions }, 'restoring assigned partitions failed again')
    }
  }

  async #committedOffsets (partitions: number[]): Promise<Map<number, string | null>> {
    const result = new Map<number, string | null>()
    if (partitions.length === 0 || this.#consumer === undefined) return result
    const topic = this.#options.topics.input
    const offsets = await this.#consumer.committed(partitions.map((partition) => ({ topic, partition })), 30_000)
    // no commit yet reads as offset null (or librdkafka's -1001)
    for (const { partition, offset } of offsets) result.set(partition, offset !== null && offset !== undefined && Number(offset) >= 0 ? String(offset) : null)
    return result
  }

  async #restore (partitions: number[]): Promise<void> {
    const started = performance.now()
    const { spec, longViewThresholdMs, topics } = this.#options
    const restored = new Map(partitions.map((partition) => [partition, new PartitionWindows(spec, longViewThresholdMs)]))
    const records = await this.#reader!.readToEnd(topics.changelog, partitions, (record) => {
      if (record.key !== null) restored.get(record.partition)?.restore(record.key, record.value?.toString('utf8') ?? null)
    })
    for (const [partition, windows] of restored) {
      this.#owned.set(partition, { windows, side: [], nextOffset: undefined })
    }
    const ms = performance.now() - started
    this.#restoreSeconds.observe(ms / 1000)
    const windows = [...restored.values()].reduce((sum, w) => sum + w.windows.size, 0)
    this.lastRestore = { partitions, records, windows, ms: Math.round(ms) }
    this.#log.info({ restore: this.lastRestore }, 'restored window state from the changelog')
  }
}
