import { performance } from 'node:perf_hooks'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyBaseLogger } from 'fastify'
import type { KafkaJS } from '@confluentinc/kafka-javascript'
import {
  type Admin, type Consumer, type KafkaClient, type StartOffset, consumerProperties,
} from './kafka.js'
import { TransactionalProducer, failureBackoff } from './transactional-producer.js'
import { fatalErrorWatch } from './consumer-failure.js'
import { traceBatch, traceConsumed } from './tracing.js'
import { type OwnedPosition, type PartitionState, mergeByTopic, startOffset } from './stream-task-state.js'
import type {
  BatchFunction, RecoveryPolicy, StandDownReason, StreamTaskCounts, StreamTaskObserver, StreamTaskSettings,
} from './stream-task-types.js'

/** Failed transactions in a row after which the task stops calling itself ready. */
const FAILURES_BEFORE_UNREADY = 3
const COMMITTED_OFFSET_TIMEOUT_MS = 5_000
/** A stateful task's assignment waits this long for the committed offsets its restore starts from. */
const RESTORE_OFFSETS_TIMEOUT_MS = 30_000
/** How often a stood-down instance asks the group whether another member still uses its instance id. */
const RECOVERY_CHECK_MS = 2_000
/** Checks in a row that must find no such member before a stood-down instance takes its place again. */
const RECOVERY_QUIET_CHECKS = 2
/** Quiet time after the last rebalance before a fenced instance closes its consumer. */
const REBALANCE_SETTLE_MS = 2_000
/** librdkafka can wait forever for a rebalance that arrives while the consumer closes; do not wait with it. */
const CONSUMER_CLOSE_TIMEOUT_MS = 5_000
/**
 * Consume-transform-produce, exactly once, in one of two shapes. With a batch function, each batch
 * the consumer hands over (one partition, at most `batchSize` records) becomes one transaction
 * holding what the function made of it and the input offset. With a partition state, batches go
 * into the role's state and every `commitIntervalMs` one transaction carries every owned partition's
 * outputs (changelog included) and offsets; the state is restored on assignment. A failed
 * transaction is aborted and the task rewinds to what the group has committed (offsets, and state
 * restored), so nothing is skipped and nothing is doubled. Fenced, the task follows its RecoveryPolicy.
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

  readonly #batch: BatchFunction | undefined
  readonly #state: PartitionState | undefined
  #producer: TransactionalProducer | undefined
  #consumer: Consumer | undefined
  #assignment: KafkaJS.TopicPartition[] | undefined
  #consecutiveFailures = 0
  #fatalInARow = 0
  #lastError: string | undefined
  #closing = false
  #stopped: Promise<void> | undefined
  readonly #stopping = new AbortController()
  #batchInFlight = false
  /** Why the task stood down (fenced, or its consumer failed under 'recover'); undefined while it takes part. */
  #stoodDown: string | undefined
  /** Set while the task closes its clients to stand down. */
  #steppingDown: Promise<void> | undefined
  /** Set while a stood-down task waits for the group to let it back ('recover'). */
  #recovery: Promise<void> | undefined
  /** Set while new clients replace a consumer that failed fatally ('step down'). */
  #restarting: Promise<void> | undefined
  #lastRebalanceAt = 0
  #admin: Admin | undefined
  /** Stateful tasks: batches, commit cycles and rebalances run one after another on this queue. */
  #queue: Promise<unknown> = Promise.resolve()
  readonly #owned = new Map<number, OwnedPosition>()
  /** Assigned partitions whose state could not be restored yet. */
  readonly #unrestored = new Set<number>()
  #restoring = false
  #timer: NodeJS.Timeout | undefined

  constructor (
    private readonly client: KafkaClient,
    private readonly settings: StreamTaskSettings,
    role: BatchFunction | PartitionState,
    private readonly log: FastifyBaseLogger,
    private readonly observer: StreamTaskObserver
  ) {
    if (typeof role === 'function') this.#batch = role
    else this.#state = role
  }

  get transactionalId (): string { return this.settings.transactionalId }
  /** Partitions owned now; undefined until the consumer joined its group (again). */
  get assignment (): KafkaJS.TopicPartition[] | undefined { return this.#assignment }
  get lastError (): string | undefined { return this.#lastError }
  get batchInFlight (): boolean { return this.#batchInFlight }
  /** Owned partitions whose state is restored (stateful tasks). */
  get ownedPartitions (): number[] { return [...this.#owned.keys()].sort((a, b) => a - b) }
  /** Why the task cannot make progress now, or undefined when it can. */
  get problem (): string | undefined {
    const { transactionalId, instanceVariable, groupId } = this.settings
    if (this.#stoodDown !== undefined) {
      if (this.#policy === 'step down') {
        return `${this.#stoodDown}; stepped down (restart this one once ${instanceVariable} is unique per replica)`
      }
      return `${this.#stoodDown}; stepped down until no other member of group ${groupId} uses instance id ` +
        `${this.settings.instanceId ?? transactionalId} (${instanceVariable} must be unique per replica; ` +
        `fatal consumer errors so far: ${this.counts.consumerFatalErrors})`
    }
    const lastError = this.#lastError ?? 'unknown'
    if (this.#restarting !== undefined) {
      return `the consumer failed fatally (${lastError}); starting over with new clients`
    }
    if (this.#producer?.ready !== true) return `no transactional producer: ${this.#lastError ?? 'connecting'}`
    if (this.#consecutiveFailures >= FAILURES_BEFORE_UNREADY) return `transactions failing: ${lastError}`
    if (this.#state === undefined) return undefined
    if (this.#assignment === undefined) return 'waiting for a partition assignment'
    if (this.#restoring) return 'restoring state from the changelog'
    if (this.#unrestored.size > 0) return `state of partitions [${[...this.#unrestored].join(',')}] not restored yet`
    return undefined
  }

  get #policy (): RecoveryPolicy { return this.settings.recovery ?? 'step down' }

  /** Producer first: initialising transactions aborts whatever a killed predecessor left open. */
  async start (): Promise<void> {
    const { deliveryTimeoutMs } = this.settings
    this.#consecutiveFailures = 0
    // a transaction a crashed instance left open (a new pod name never fences it) blocks readers and
    // input offsets until the broker aborts it: keep that short, just above the delivery timeout
    this.#producer = await TransactionalProducer.open({
      client: this.client,
      transactionalId: this.settings.transactionalId,
      ...(deliveryTimeoutMs === undefined
        ? {}
        : { transactionTimeoutMs: deliveryTimeoutMs + 10_000, deliveryTimeoutMs }),
      log: this.log,
      closing: this.#stopping.signal,
      failures: () => this.#consecutiveFailures,
      commitAttempts: this.settings.commitAttempts ?? 1,
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
        rebalance: (kind, partitions) => this.#rebalance(consumer, kind, partitions),
      }),
      // static membership: a restarted instance takes its partitions back without waiting for a rebalance
      ...(this.settings.staticMembership ? { 'group.instance.id': this.settings.transactionalId } : {}),
      // the group then tells who else uses this instance id
      ...(this.#policy === 'recover' ? { 'client.id': this.#memberClientId } : {}),
      // incremental rebalances: a joining or leaving replica moves only the partitions that change owner,
      // the others go on without a restore
      ...(this.#state === undefined ? {} : { 'partition.assignment.strategy': 'cooperative-sticky' }),
      'js.consumer.max.batch.size': this.settings.batchSize,
      // merged into the client's kafkaJS block (brokers, log level): only the logger is the task's
      kafkaJS: { logger: this.#consumerLogger(() => consumer) } as KafkaJS.ConsumerConfig,
    } as KafkaJS.ConsumerConstructorConfig)
    this.#consumer = consumer
    await consumer.connect()
    await consumer.subscribe({ topics: [this.settings.inputTopic] })
    await consumer.run({
      eachBatch: (payload) => (this.#state === undefined
        ? this.#transact(consumer, payload.batch)
        : this.#serially(() => { this.#take(consumer, payload) })),
    })
    this.#scheduleCommit()
  }

  /** Lets the transaction in flight finish (stateful: commits what was processed), then closes the clients. */
  stop (): Promise<void> {
    this.#stopped ??= this.#stop()
    return this.#stopped
  }

  async #stop (): Promise<void> {
    this.#closing = true
    this.#stopping.abort()
    clearTimeout(this.#timer)
    this.log.info({ batchInFlight: this.#batchInFlight }, `stopping the ${this.settings.name}`)
    await this.#steppingDown
    await this.#recovery
    await this.#restarting
    if (this.#state !== undefined && this.#stoodDown === undefined) {
      await this.#serially(() => this.#commit()).catch((err: Error) => { this.log.warn({ err }, 'last commit failed') })
    }
    await this.#closeClients()
    // a consumer closing is no longer the task's: its revocation came unheard
    if (this.#state !== undefined) this.#drop([...this.#owned.keys(), ...this.#unrestored])
    await this.#admin?.disconnect().catch((err: Error) => { this.log.warn({ err }, 'admin disconnect failed') })
  }

  get #memberClientId (): string {
    return `${this.settings.name.replace(/\W+/g, '-')}-${this.settings.transactionalId}`
  }

  #serially<T> (task: () => T | Promise<T>): Promise<T> {
    const result = this.#queue.then(task)
    this.#queue = result.then(() => undefined, () => undefined)
    return result
  }

  /** The consumer's log lines go to the task's log; a fatal error among them makes the task start over. */
  #consumerLogger (consumer: () => Consumer): KafkaJS.Logger {
    return fatalErrorWatch(this.log, (message) => { this.#onFatal(consumer(), message) })
  }

  /**
   * The consumer is unusable (librdkafka retries nothing after a fatal error): not ready, counted,
   * then new clients, after a backoff ('step down': a static member fenced by a live twin fences it
   * back in turn, but the twins settle as the first whose transaction finds its producer fenced steps
   * down) or once no other member uses the instance id ('recover').
   */
  #onFatal (consumer: Consumer, message: string): void {
    if (consumer !== this.#consumer || this.#closing) return
    if (this.#stoodDown !== undefined || this.#restarting !== undefined) return
    this.counts.consumerFatalErrors += 1
    this.#fatalInARow += 1
    // the client's line can carry a stack trace: its first line says enough
    this.#lastError = message.split('\n')[0]
    this.observer.consumerFailed()
    if (this.#policy === 'recover') {
      this.#standDown(`the consumer failed fatally (${this.#lastError})`, 'consumer fatal error')
      return
    }
    this.log.error({ transactionalId: this.settings.transactionalId },
      `fatal consumer error; starting over with new clients (is ${this.settings.instanceVariable} unique per replica?)`)
    this.#restarting = this.#restart().finally(() => { this.#restarting = undefined })
  }

  async #restart (): Promise<void> {
    await new Promise((resolve) => { setImmediate(resolve) })
    await this.#closeClients()
    while (!this.#closing && this.#stoodDown === undefined) {
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
    clearTimeout(this.#timer)
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

  /** Hands over: not ready, no more transactions, clients closed; then the recovery policy applies. */
  #standDown (reason: string, kind: StandDownReason): void {
    if (this.#stoodDown !== undefined || this.#closing) return
    this.#stoodDown = reason
    this.observer.stoodDown?.(kind)
    clearTimeout(this.#timer)
    // the consumer can be closed neither from inside its own batch handler nor while a commit holds the queue
    const steppingDown = new Promise<void>((resolve) => { setImmediate(resolve) }).then(() => this.#stepDown())
    this.#steppingDown = steppingDown
    if (this.#policy === 'recover') {
      this.#recovery = steppingDown.then(() => this.#recover())
        .catch((err: Error) => { this.log.error({ err }, 'recovering after stepping down failed') })
        .finally(() => { this.#recovery = undefined })
    }
  }

  async #stepDown (): Promise<void> {
    this.log.error({ transactionalId: this.settings.transactionalId, reason: this.#stoodDown },
      `stepping down (is ${this.settings.instanceVariable} unique per replica?)`)
    // the fencing instance is joining the group right now, and closing a consumer in mid-rebalance can hang
    const deadline = Date.now() + 15_000
    while (Date.now() - this.#lastRebalanceAt < REBALANCE_SETTLE_MS && Date.now() < deadline && !this.#closing) {
      await sleep(200, undefined, { signal: this.#stopping.signal }).catch(() => {})
    }
    await this.#closeClients()
    if (this.#state !== undefined) {
      await this.#serially(() => { this.#drop([...this.#owned.keys(), ...this.#unrestored]) })
    }
    this.log.warn('stepped down: left the group and closed the transactional producer')
  }

  /** 'recover': back once no other member of the group has used this instance id for two checks in a row. */
  async #recover (): Promise<void> {
    let quiet = 0
    while (!this.#closing) {
      await sleep(RECOVERY_CHECK_MS, undefined, { signal: this.#stopping.signal }).catch(() => {})
      if (this.#closing) return
      const others = await this.#membersWithOurId().catch((err: Error) => {
        this.log.warn({ err }, 'describing the group failed')
        return undefined
      })
      quiet = others === 0 ? quiet + 1 : 0
      if (quiet < RECOVERY_QUIET_CHECKS) continue
      // from here the new consumer's batches count: what it fetches is processed, not skipped
      this.#stoodDown = undefined
      try {
        await this.start()
      } catch (err) {
        this.#stoodDown = `opening new clients failed (${(err as Error).message})`
        this.log.error({ err }, 'opening new clients failed; trying again')
        await this.#closeClients()
        quiet = 0
        continue
      }
      if (this.#closing) return
      this.observer.recovered?.()
      this.log.warn({ transactionalId: this.settings.transactionalId },
        'recovered: no other member uses this instance id, new clients joined the group')
      return
    }
  }

  async #membersWithOurId (): Promise<number> {
    // opened on the first stand-down only: a healthy task never needs it
    if (this.#admin === undefined) {
      const admin = this.client.admin()
      await admin.connect()
      this.#admin = admin
    }
    const { groupId, transactionalId } = this.settings
    const { groups } = await this.#admin.describeGroups([groupId], { timeout: 5_000 })
    const members = groups.find((group) => group.groupId === groupId)?.members ?? []
    const ours = (m: { groupInstanceId?: string, clientId: string }) =>
      m.groupInstanceId === transactionalId || m.clientId === this.#memberClientId
    return members.filter(ours).length
  }

  /**
   * Stateful tasks answer an assignment with the committed offsets their restored state ends at,
   * given to librdkafka with the assignment: a seek from here would come before it is applied.
   * Eager or cooperative, `partitions` are exactly those that change hands: the others go on as they are.
   */
  async #rebalance (
    consumer: Consumer, kind: 'assign' | 'revoke', partitions: KafkaJS.TopicPartition[]
  ): Promise<StartOffset[] | undefined> {
    // a consumer closed after a fatal error may still call back: what it says is no longer ours
    if (consumer !== this.#consumer) return undefined
    this.#lastRebalanceAt = Date.now()
    const changed = partitions.map(({ topic, partition }) => ({ topic, partition }))
    const kept = (this.#assignment ?? []).filter((tp) => !changed.some((c) => c.partition === tp.partition))
    this.log.info({ kind, partitions: changed.map((p) => p.partition) }, 'partitions rebalanced')
    if (this.#state === undefined) {
      this.#assignment = kind === 'assign' ? [...kept, ...changed] : kept
      return undefined
    }
    const numbers = changed.filter((tp) => tp.topic === this.settings.inputTopic).map((tp) => tp.partition)
    return await this.#serially(async () => {
      if (kind === 'revoke') {
        // uncommitted work is dropped: the next owner starts from the last commit, state and offsets alike
        this.#drop(numbers)
        this.#assignment = kept
        return undefined
      }
      this.#restoring = true
      try {
        const committed = await this.#restore(consumer, numbers, 'assigned')
        const start = (partition: number) => startOffset(committed.get(partition) ?? null)
        return changed.map((tp) => ({ ...tp, offset: start(tp.partition) }))
      } catch (err) {
        // their batches are skipped until a later commit cycle restores them
        for (const partition of numbers) this.#unrestored.add(partition)
        this.log.error({ err, partitions: numbers },
          'restoring assigned partitions failed; retrying at the next commit cycle')
        return undefined
      } finally {
        this.#restoring = false
        this.#assignment = [...kept, ...changed]
        // no batch came in while this restore held the queue: that was no quiet time of the partitions
        const now = Date.now()
        for (const owned of this.#owned.values()) owned.quietSince = now
      }
    })
  }

  /**
   * Restores partitions as of their last commit and returns the committed offsets to start from:
   * asked from the group, not remembered, since a commit that reported a timeout may have landed
   * (and then the changelog holds it too). Records before them are skipped from here on, whatever
   * seek an earlier rewind left pending.
   */
  async #restore (consumer: Consumer, partitions: number[], why: string): Promise<Map<number, string | null>> {
    const committed = new Map<number, string | null>()
    if (partitions.length === 0) return committed
    const topic = this.settings.inputTopic
    const asked = partitions.map((partition) => ({ topic, partition }))
    const offsets = await consumer.committed(asked, RESTORE_OFFSETS_TIMEOUT_MS)
    // no commit yet reads as offset null (or librdkafka's -1001)
    for (const { partition, offset } of offsets) {
      committed.set(partition, offset !== null && offset !== undefined && Number(offset) >= 0 ? String(offset) : null)
    }
    await this.#state!.restore(partitions)
    for (const partition of partitions) {
      this.#unrestored.delete(partition)
      const position = Number(committed.get(partition) ?? 0)
      this.#owned.set(partition, { position, nextOffset: undefined, quietSince: Date.now() })
    }
    this.log.info({ partitions, offsets: Object.fromEntries(committed) }, `partitions ${why}`)
    return committed
  }

  #drop (partitions: number[]): void {
    for (const partition of partitions) {
      this.#owned.delete(partition)
      this.#unrestored.delete(partition)
    }
    this.#state!.release(partitions)
  }

  /** Restores again and seeks to the committed offsets; partitions that fail wait for the next commit cycle. */
  async #restoreAndSeek (consumer: Consumer, partitions: number[], why: string): Promise<void> {
    if (partitions.length === 0) return
    try {
      const committed = await this.#restore(consumer, partitions, why)
      const topic = this.settings.inputTopic
      for (const [partition, offset] of committed) {
        consumer.seek({ topic, partition, offset: String(startOffset(offset)) })
      }
    } catch (err) {
      this.#drop(partitions)
      for (const partition of partitions) this.#unrestored.add(partition)
      this.log.error({ err, partitions },
        `restoring partitions failed (${why}); restoring again at the next commit cycle`)
    }
  }

  /** A stateful task's batch: its new records into the partition's state, the offset to commit with it. */
  #take (consumer: Consumer, payload: KafkaJS.EachBatchPayload): void {
    // a rewind seeked this partition back: these messages come again from the committed offset
    if (this.#closing || this.#stoodDown !== undefined || payload.isStale() || consumer !== this.#consumer) return
    const { batch } = payload
    const owned = this.#owned.get(batch.partition)
    if (owned === undefined) return
    const fresh = batch.messages.filter((message) => Number(message.offset) >= owned.position)
    const consumed = { topic: batch.topic, partition: batch.partition, messages: fresh }
    traceConsumed(consumed, this.settings.groupId, () => this.#state!.process(batch.partition, fresh))
    owned.quietSince = Date.now()
    owned.position = Math.max(owned.position, Number(batch.lastOffset()) + 1)
    owned.nextOffset = String(owned.position)
  }

  #scheduleCommit (): void {
    if (this.#state === undefined || this.#closing || this.#stoodDown !== undefined) return
    clearTimeout(this.#timer)
    this.#timer = setTimeout(() => {
      this.#serially(() => this.#commit())
        .catch((err: Error) => { this.log.error({ err }, 'commit cycle failed') })
        .finally(() => { this.#scheduleCommit() })
    }, this.settings.commitIntervalMs ?? 100)
  }

  /** A stateful task's commit cycle: one transaction for the outputs and offsets of every owned partition. */
  async #commit (): Promise<void> {
    const transactional = this.#producer
    const producer = transactional?.current
    const consumer = this.#consumer
    if (transactional === undefined || producer === undefined || consumer === undefined) return
    if (this.#stoodDown !== undefined) return
    if (this.#unrestored.size > 0) await this.#retryRestore(consumer)
    const now = Date.now()
    const work = [...this.#owned].map(([partition, owned]) => ({
      partition, owned, outputs: this.#state!.outputs(partition, now - owned.quietSince),
    })).filter((entry) => entry.owned.nextOffset !== undefined || entry.outputs.some((o) => o.messages.length > 0))
    if (work.length === 0) return
    const outputs = mergeByTopic(work.map((entry) => entry.outputs))
    const offsets = work.flatMap(({ partition, owned }) =>
      owned.nextOffset === undefined ? [] : [{ partition, offset: owned.nextOffset }])
    const partitions = work.map((entry) => entry.partition)
    const started = performance.now()
    this.#batchInFlight = true
    try {
      await producer.transaction()
      if (outputs.length > 0) await producer.sendBatch({ topicMessages: outputs as KafkaJS.TopicMessages[] })
      if (offsets.length > 0) {
        await producer.sendOffsets({ consumer, topics: [{ topic: this.settings.inputTopic, partitions: offsets }] })
      }
      await transactional.commit()
    } catch (err) {
      await this.#failed(transactional, err as Error, { partitions })
      // shutting down: the next owner (or this instance's restart) restores from the last commit anyway
      if (this.#closing || this.#stoodDown !== undefined || consumer !== this.#consumer) return
      await this.#restoreAndSeek(consumer, [...this.#owned.keys()], 'rewound')
      await this.#backoff()
      return
    } finally {
      this.#batchInFlight = false
    }
    this.#state!.committed(partitions)
    for (const { owned } of work) owned.nextOffset = undefined
    const written = outputs.reduce((sum, entry) => sum + entry.messages.length, 0)
    this.#succeeded(written, 0, started)
  }

  async #retryRestore (consumer: Consumer): Promise<void> {
    const topic = this.settings.inputTopic
    const assigned = new Set(consumer.assignment().filter((tp) => tp.topic === topic).map((tp) => tp.partition))
    const partitions = [...this.#unrestored].filter((partition) => assigned.has(partition))
    this.#unrestored.clear()
    await this.#restoreAndSeek(consumer, partitions, 'assigned')
  }

  async #transact (consumer: Consumer, batch: KafkaJS.Batch): Promise<void> {
    const { topic, partition, messages } = batch
    const transactional = this.#producer
    const producer = transactional?.current
    if (transactional === undefined || producer === undefined || consumer !== this.#consumer) return
    if (messages.length === 0) return
    if (this.#stoodDown !== undefined || this.#restarting !== undefined) {
      // handed over: leave the batch unconsumed, for whoever owns the partition next
      consumer.seek({ topic, partition, offset: batch.firstOffset() ?? '0' })
      return
    }
    const work = traceBatch(batch, this.settings.groupId, () => this.#batch!(topic, partition, messages))
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
      const context = { topic, partition, firstOffset: batch.firstOffset(), records: messages.length }
      await this.#failed(transactional, err as Error, context)
      if (this.#stoodDown !== undefined) {
        const offset = batch.firstOffset()
        if (offset !== null) consumer.seek({ topic, partition, offset })
        return
      }
      if (this.#closing) return
      const offset = await this.#committedOffset(consumer, topic, partition, batch.firstOffset() ?? '0')
      if (offset !== undefined) consumer.seek({ topic, partition, offset })
      await this.#backoff()
      return
    } finally {
      this.#batchInFlight = false
    }
    this.#succeeded(written, work.deadLetters.length, started)
  }

  #succeeded (written: number, deadLettered: number, started: number): void {
    this.#consecutiveFailures = 0
    this.#fatalInARow = 0
    this.counts.written += written
    this.counts.deadLettered += deadLettered
    this.counts.transactionsCommitted += 1
    const seconds = (performance.now() - started) / 1000
    this.observer.committed({ written, deadLettered, seconds })
  }

  /**
   * Aborts (or, when the producer is no longer usable, replaces it, which also settles a
   * transaction whose commit outcome is unknown); fenced, stands down. The caller rewinds.
   */
  async #failed (transactional: TransactionalProducer, err: Error, context: Record<string, unknown>): Promise<void> {
    this.#consecutiveFailures += 1
    this.#lastError = err.message
    this.counts.transactionsAborted += 1
    this.observer.aborted()
    this.log.warn({ err, ...context }, 'transaction failed; aborting and rewinding to the committed offset')
    const outcome = await transactional.abortOrReplace(err)
    if (outcome !== 'fenced') return
    this.counts.timesFenced += 1
    this.#standDown(`fenced by another instance with transactional.id ${this.settings.transactionalId}`, 'fenced')
  }

  async #committedOffset (
    consumer: Consumer, topic: string, partition: number, fallback: string
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
