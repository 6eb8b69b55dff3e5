import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyBaseLogger } from 'fastify'
import { Counter, Gauge, Histogram, type Registry } from 'prom-client'
import {
  type Admin, type Consumer, type KafkaClient, type KafkaMessage, type PageEvent, type StartOffset,
  InvalidPageEventError, TransactionalProducer, consumerProperties, deadLetterMessage, decodePageEvent, eventTime, failureBackoff,
  fatalErrorWatch,
} from '@pagestream/core'
import type { KafkaJS } from '@confluentinc/kafka-javascript'
import { labCountMessage } from './lab-compat.js'
import { PartitionReader } from './partition-reader.js'
import { SerialQueue } from './serial-queue.js'
import { streamTimeRecord, windowTombstone, windowUpdate } from './changelog.js'
import { PartitionWindows } from './window-store.js'
import type { TimeSource, WindowSpec } from './window-geometry.js'
import { windowRecord } from './window-record.js'

export interface ProcessorTopics {
  input: string
  output: string
  changelog: string
  late: string
  deadLetter: string
  /** Also every R4 update as the lab wrote it (page -> Long count); undefined: not written. */
  compat?: string
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
  timeSource: TimeSource
  /** A partition without input this long closes its windows on the wall clock; 0: never. */
  idleCloseMs: number
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
  /** The first offset the state has not counted: records before it (a stale seek) are skipped. */
  position: number
  /** Wall-clock time of the partition's last batch, assignment or restore: it is idle from then on. */
  quietSince: number
}

/** What the rebalance callback answers: an assignment with start offsets, or nothing to change. */
type Answer = StartOffset[] | undefined

export interface RestoreReport { partitions: number[], records: number, windows: number, ms: number }

/** Tries of one commit that fails with a retriable error, before the transaction is aborted. */
const COMMIT_ATTEMPTS = 3
/** Failed transactions in a row after which the processor stops calling itself ready. */
const FAILURES_BEFORE_UNREADY = 3
/** Quiet time after the last rebalance before a fenced instance closes its consumer. */
const REBALANCE_SETTLE_MS = 2_000
/** librdkafka can wait forever for a rebalance that arrives while the consumer closes; do not wait with it. */
const CONSUMER_CLOSE_TIMEOUT_MS = 5_000
/** How often a stood-down instance asks the group whether another member still uses its instance id. */
const RECOVERY_CHECK_MS = 2_000
/** Checks in a row that must find no such member before this instance takes its place again. */
const RECOVERY_QUIET_CHECKS = 2

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
  /**
   * Set while stood down: fenced by another instance with this transactional.id, or the consumer
   * failed fatally. Clients closed, no commits, until no other member uses this instance id.
   */
  #steppingDown: Promise<void> | undefined
  #standDownReason = ''
  #fatalErrorCount = 0
  #recovery: Promise<void> | undefined
  /** Counts the consumers opened: callbacks of a closed one are ignored. */
  #generation = 0
  #admin: Admin | undefined
  #lastRebalanceAt = 0
  lastRestore: RestoreReport | undefined

  readonly #events: Counter
  readonly #late: Counter
  readonly #deadLetters: Counter
  readonly #transactions: Counter<'result'>
  readonly #restoreSeconds: Histogram
  readonly #openWindows: Gauge
  readonly #fatalConsumerErrors: Counter
  readonly #standDowns: Counter<'reason'>
  readonly #recoveries: Counter

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
    this.#fatalConsumerErrors = new Counter({
      name: 'analytics_consumer_fatal_errors_total',
      help: 'fatal errors of the processor consumer (static member fenced, Local: Fatal error)',
      registers,
    })
    this.#standDowns = new Counter({
      name: 'analytics_stand_downs_total',
      help: 'times the processor closed its clients and stopped processing, by reason',
      labelNames: ['reason'],
      registers,
    })
    this.#recoveries = new Counter({
      name: 'analytics_recoveries_total',
      help: 'times a stood-down processor opened new clients and took part in the group again',
      registers,
    })
  }

  get transactionalId (): string {
    return `${this.#options.groupId}-${this.#options.instanceId}`
  }

  /** Ready once the group gave this instance its partitions (possibly none) and their state is restored. */
  readiness (): { ok: boolean, detail?: string } {
    if (this.#steppingDown !== undefined) {
      const { groupId, instanceId } = this.#options
      return {
        ok: false,
        detail: `${this.#standDownReason}; stepped down until no other member of group ${groupId} uses instance id ` +
          `${instanceId} (ANALYTICS_INSTANCE_ID must be unique per replica; ` +
          `fatal consumer errors so far: ${this.#fatalErrorCount})`,
      }
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
    const { groupId, instanceId } = this.#options
    this.#reader = await PartitionReader.connect(this.#options.connection, `${groupId}-restore-${instanceId}`, 10)
    await this.#open()
    this.#scheduleCommit()
  }

  /** The consumer's client.id names the instance, so that the group tells who else uses this instance id. */
  get #consumerClientId (): string {
    return `${this.#options.connection['client.id'] ?? 'pagestream-analytics'}-${this.#options.instanceId}`
  }

  /** Opens the transactional producer, then the consumer that joins the group. */
  async #open (): Promise<void> {
    const { client, topics, groupId } = this.#options
    const generation = ++this.#generation
    this.#joined = false
    this.#consecutiveFailures = 0
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
    const kafkaLog = this.#log.child({ component: 'kafka' })
    const consumer = client.consumer({
      ...consumerProperties({ groupId, rebalance: (kind, assigned) => this.#rebalance(kind, assigned, generation) }),
      'client.id': this.#consumerClientId,
      kafkaJS: { logger: fatalErrorWatch(kafkaLog, (message) => { this.#onFatal(message, generation) }) },
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
    await consumer.run({ eachBatch: (payload) => this.#onBatch(payload, generation) })
  }

  /** librdkafka gave the consumer up (fenced static member, fatal error): it will never fetch again. */
  #onFatal (message: string, generation: number): void {
    if (generation !== this.#generation || this.#stopping) return
    this.#fatalConsumerErrors.inc()
    this.#fatalErrorCount += 1
    this.#lastError = message
    this.#standDown(`the consumer failed fatally (${message})`, 'consumer fatal error')
  }

  /**
   * Stops processing and closes the clients; then waits until no other member of the group uses
   * this instance id (a replica given the same id lives on: taking over again would fence it in
   * turn, and neither would ever commit) and opens new clients, state restored on assignment.
   */
  #standDown (reason: string, kind: 'fenced' | 'consumer fatal error'): void {
    if (this.#steppingDown !== undefined || this.#stopping) return
    this.#standDownReason = reason
    this.#standDowns.inc({ reason: kind })
    // the consumer cannot be closed while a commit holds the queue its rebalance callback needs
    const steppingDown = new Promise<void>((resolve) => { setImmediate(resolve) }).then(() => this.#stepDown())
    this.#steppingDown = steppingDown
    this.#recovery = steppingDown.then(() => this.#recover())
      .catch((err: Error) => { this.#log.error({ err }, 'recovering after stepping down failed') })
  }

  async #recover (): Promise<void> {
    let quiet = 0
    while (!this.#stopping) {
      await sleep(RECOVERY_CHECK_MS, undefined, { signal: this.#stopped.signal }).catch(() => {})
      if (this.#stopping) return
      const others = await this.#membersWithOurId().catch((err: Error) => {
        this.#log.warn({ err }, 'describing the group failed')
        return undefined
      })
      quiet = others === 0 ? quiet + 1 : 0
      if (quiet < RECOVERY_QUIET_CHECKS) continue
      // from here the new consumer's batches count: what it fetches is processed, not skipped
      this.#steppingDown = undefined
      try {
        await this.#open()
      } catch (err) {
        this.#log.error({ err }, 'opening new clients failed; trying again')
        this.#steppingDown = this.#closeClients()
        await this.#steppingDown
        quiet = 0
        continue
      }
      if (this.#stopping) return
      this.#recoveries.inc()
      this.#log.warn({ transactionalId: this.transactionalId },
        'recovered: no other member uses this instance id, new clients joined the group')
      this.#scheduleCommit()
      return
    }
  }

  async #membersWithOurId (): Promise<number> {
    // opened on the first stand-down only: a healthy processor never needs it
    if (this.#admin === undefined) {
      const admin = this.#options.client.admin()
      await admin.connect()
      this.#admin = admin
    }
    const { groups } = await this.#admin.describeGroups([this.#options.groupId], { timeout: 5_000 })
    const members = groups.find((group) => group.groupId === this.#options.groupId)?.members ?? []
    const ours = (m: { groupInstanceId?: string, clientId: string }) =>
      m.groupInstanceId === this.transactionalId || m.clientId === this.#consumerClientId
    return members.filter(ours).length
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
    await this.#recovery
    await this.#queue.run(() => this.#commit()).catch((err: Error) => { this.#log.warn({ err }, 'last commit failed') })
    await this.#closeClients()
    await this.#reader?.disconnect()
    await this.#admin?.disconnect().catch((err: Error) => { this.#log.warn({ err }, 'admin disconnect failed') })
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
   * Another instance initialised our transactional.id (two replicas given one ANALYTICS_INSTANCE_ID,
   * or a paused zombie meeting its successor), or the consumer failed fatally: hand over, not ready,
   * no more commits, leave the group.
   */
  async #stepDown (): Promise<void> {
    this.#log.error({ transactionalId: this.transactionalId, reason: this.#standDownReason },
      'stepping down (is ANALYTICS_INSTANCE_ID unique per replica?)')
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

  async #onBatch (payload: KafkaJS.EachBatchPayload, generation: number): Promise<void> {
    await this.#queue.run(() => {
      // a rewind seeked this partition back: these messages come again from the committed offset
      if (this.#stopping || this.#steppingDown !== undefined || payload.isStale()) return
      // a batch of a consumer closed after a fatal error: the new consumer fetches it again
      if (generation !== this.#generation) return
      const { batch } = payload
      const owned = this.#owned.get(batch.partition)
      if (owned === undefined) return
      for (const message of batch.messages) {
        if (Number(message.offset) >= owned.position) this.#process(owned, batch.partition, message)
      }
      owned.windows.closeExpired()
      owned.quietSince = Date.now()
      owned.position = Math.max(owned.position, Number(batch.lastOffset()) + 1)
      owned.nextOffset = String(owned.position)
    })
  }

  #process (owned: OwnedPartition, partition: number, message: KafkaMessage): void {
    const { topics } = this.#options
    let event
    let time
    try {
      event = decodePageEvent(message.value)
      time = this.#eventTime(event, message)
      const { maxFutureMs } = this.#options
      if (maxFutureMs > 0 && time > Date.now() + maxFutureMs) {
        // stream time would jump ahead and close every window of the partition at once
        const field = this.#options.timeSource
        const limit = `must not be more than ${maxFutureMs} ms ahead of the clock`
        throw new InvalidPageEventError(field, `${limit} (got ${new Date(time).toISOString()})`)
      }
    } catch (err) {
      owned.side.push({ topic: topics.deadLetter, message: deadLetterMessage({ topic: topics.input, partition, message }, err as Error, { role: 'analytics', consumerGroup: this.#options.groupId }) })
      this.#deadLetters.inc()
      return
    }
    // stream time never passes the wall clock, whatever the date of an event within maxFutureMs
    const { missed } = owned.windows.add(event, Date.now(), time)
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

  #eventTime (event: PageEvent, message: KafkaMessage): number {
    if (this.#options.timeSource === 'date') return eventTime(event)
    const timestamp = Number(message.timestamp)
    if (!Number.isSafeInteger(timestamp) || timestamp < 0) {
      throw new InvalidPageEventError('timestamp', `the record has no timestamp (got ${message.timestamp})`)
    }
    return timestamp
  }

  /**
   * Stream time moves only with input: a partition that has had none for idleCloseMs closes its
   * windows on the wall clock once their end plus grace has passed, so their finals need no new traffic.
   */
  #closeIdle (): void {
    const { idleCloseMs } = this.#options
    if (idleCloseMs <= 0) return
    const now = Date.now()
    for (const owned of this.#owned.values()) {
      if (now - owned.quietSince >= idleCloseMs) owned.windows.closeOnClock(now)
    }
  }

  /** One transaction: R4 updates and finals, changelog, side outputs, input offsets. */
  async #commit (): Promise<void> {
    const transactional = this.#producer
    const producer = transactional?.current
    const consumer = this.#consumer
    if (transactional === undefined || producer === undefined || consumer === undefined || this.#steppingDown !== undefined) return
    if (this.#unrestored.size > 0) await this.#retryRestore()
    this.#closeIdle()
    const work = [...this.#owned].filter(([, owned]) => owned.windows.hasPending() || owned.side.length > 0 || owned.nextOffset !== undefined)
    if (work.length === 0) return
    const { topics } = this.#options
    const output: OutgoingMessage[] = []
    const compat: OutgoingMessage[] = []
    const changelog: OutgoingMessage[] = []
    const side = new Map<string, OutgoingMessage[]>()
    const offsets: Array<{ partition: number, offset: string }> = []
    for (const [partition, owned] of work) {
      const { updated, closed, streamTime } = owned.windows.pending()
      for (const window of updated) {
        output.push({ key: window.page, value: JSON.stringify(windowRecord(window, false)) })
        if (topics.compat !== undefined) compat.push(labCountMessage(window, false))
        changelog.push(windowUpdate(window, partition))
      }
      for (const window of closed) {
        output.push({ key: window.page, value: JSON.stringify(windowRecord(window, true)) })
        if (topics.compat !== undefined) compat.push(labCountMessage(window, true))
        changelog.push(windowTombstone(window, partition))
      }
      if (streamTime !== undefined) changelog.push(streamTimeRecord(streamTime, partition))
      for (const { topic, message } of owned.side) side.set(topic, [...(side.get(topic) ?? []), message])
      if (owned.nextOffset !== undefined) offsets.push({ partition, offset: owned.nextOffset })
    }
    const topicMessages = [
      { topic: topics.output, messages: output },
      ...(topics.compat !== undefined ? [{ topic: topics.compat, messages: compat }] : []),
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
        this.#standDown(`fenced by another instance with transactional.id ${this.transactionalId}`, 'fenced')
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
      this.#seekTo(await this.#take(partitions, 'rewound'))
    } catch (err) {
      for (const partition of partitions) {
        this.#owned.delete(partition)
        this.#unrestored.add(partition)
      }
      this.#log.error({ err, partitions }, 'rewinding to the last commit failed; restoring again at the next commit interval')
    }
  }

  /** Positions assigned partitions at the committed offsets their restored state ends at. */
  #seekTo (committed: Map<number, string | null>): void {
    const topic = this.#options.topics.input
    for (const [partition, offset] of committed) {
      this.#consumer?.seek({ topic, partition, offset: String(startOffset(offset)) })
    }
  }

  /**
   * Assigned partitions start at the committed offsets their restored state ends at, given to
   * librdkafka with the assignment: a seek from here would come before the assignment is applied.
   */
  #rebalance (kind: 'assign' | 'revoke', assignment: KafkaJS.TopicPartition[], generation: number): Promise<Answer> {
    // a consumer closed after a fatal error may still call back: what it says is no longer ours
    if (generation !== this.#generation) return Promise.resolve(undefined)
    const partitions = assignment.filter((tp) => tp.topic === this.#options.topics.input).map((tp) => tp.partition)
    this.#lastRebalanceAt = Date.now()
    return this.#queue.run(async (): Promise<Answer> => {
      // eager or cooperative, `partitions` are exactly those that change hands: the others are kept as they are
      if (kind === 'revoke') {
        // uncommitted work is dropped: the next owner starts from the last commit, state and offsets alike
        for (const partition of partitions) {
          this.#owned.delete(partition)
          this.#unrestored.delete(partition)
        }
        this.#log.info({ partitions }, 'partitions revoked')
        return undefined
      }
      this.#restoring = true
      try {
        const committed = await this.#take(partitions)
        const start = (partition: number) => startOffset(committed.get(partition) ?? null)
        return assignment.map((tp) => ({ topic: tp.topic, partition: tp.partition, offset: start(tp.partition) }))
      } catch (err) {
        // their batches are skipped until a later commit cycle restores them
        for (const partition of partitions) this.#unrestored.add(partition)
        this.#log.error({ err, partitions }, 'restoring assigned partitions failed; retrying at the next commit interval')
        return undefined
      } finally {
        this.#restoring = false
        this.#joined = true
        // no batch came in while this restore held the queue: that was no quiet time of the partitions
        const now = Date.now()
        for (const owned of this.#owned.values()) owned.quietSince = now
      }
    })
  }

  /**
   * Restores partitions as of their last commit and returns the committed offsets to start from.
   * Records before them are skipped from here on, whatever seek an earlier rewind left pending.
   */
  async #take (partitions: number[], why: 'assigned' | 'rewound' = 'assigned'): Promise<Map<number, string | null>> {
    const committed = await this.#committedOffsets(partitions)
    await this.#restore(partitions, committed)
    this.#log.info({ partitions, offsets: Object.fromEntries(committed) }, `partitions ${why}`)
    return committed
  }

  async #retryRestore (): Promise<void> {
    const topic = this.#options.topics.input
    const assigned = new Set((this.#consumer?.assignment() ?? []).filter((tp) => tp.topic === topic).map((tp) => tp.partition))
    const partitions = [...this.#unrestored].filter((partition) => assigned.has(partition))
    this.#unrestored.clear()
    if (partitions.length === 0) return
    try {
      this.#seekTo(await this.#take(partitions))
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

  async #restore (partitions: number[], committed: Map<number, string | null>): Promise<void> {
    const started = performance.now()
    const { spec, longViewThresholdMs, topics } = this.#options
    const restored = new Map(partitions.map((partition) => [partition, new PartitionWindows(spec, longViewThresholdMs)]))
    const records = await this.#reader!.readToEnd(topics.changelog, partitions, (record) => {
      if (record.key !== null) restored.get(record.partition)?.restore(record.key, record.value?.toString('utf8') ?? null)
    })
    for (const [partition, windows] of restored) {
      const position = Number(committed.get(partition) ?? 0)
      this.#owned.set(partition, { windows, side: [], nextOffset: undefined, position, quietSince: Date.now() })
    }
    const ms = performance.now() - started
    this.#restoreSeconds.observe(ms / 1000)
    const windows = [...restored.values()].reduce((sum, w) => sum + w.windows.size, 0)
    this.lastRestore = { partitions, records, windows, ms: Math.round(ms) }
    this.#log.info({ restore: this.lastRestore }, 'restored window state from the changelog')
  }
}

/** Where a partition starts: its committed offset, or librdkafka's -2 (the beginning) for a fresh group. */
function startOffset (committed: string | null): number {
  return committed === null ? -2 : Number(committed)
}
