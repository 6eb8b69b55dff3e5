import type { FastifyBaseLogger } from 'fastify'
import { Counter, Gauge, Histogram, type Registry } from 'prom-client'
import {
  type CheckResult, type KafkaClient, type KafkaMessage, type OutgoingRecord, type PageEvent, type PartitionState,
  type StreamTaskObserver, type StreamTaskSettings, type TopicRecords, InvalidPageEventError, StreamTask,
  deadLetterMessage, decodePageEvent, decodeValidatedPageEvent, eventTime,
} from '@pagestream/core'
import { streamTimeRecord, windowTombstone, windowUpdate } from './changelog.js'
import { labCountMessage } from './lab-compat.js'
import { PartitionReader } from './partition-reader.js'
import type { TimeSource, WindowSpec } from './window-geometry.js'
import { windowRecord } from './window-record.js'
import { PartitionWindows } from './window-store.js'

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
  /** The input holds only records a pagestream stage validated (the repartition topic): they are not checked again. */
  inputValidated?: boolean
  prefetch?: StreamTaskSettings['prefetch']
}

export interface RestoreReport { partitions: number[], records: number, windows: number, ms: number }

export const LATE_HEADERS = { streamTime: 'late-stream-time', missed: 'late-windows-missed' } as const

/** Everything this instance holds for one owned input partition besides its offsets. */
interface OwnedWindows {
  windows: PartitionWindows
  /** Late and dead-letter records waiting for the next transaction. */
  side: TopicRecords[]
}

/**
 * R2 -> R4 with exactly-once state, as a stateful core stream task: every commit interval one
 * transaction carries the window updates and finals (R4), the changelog records, late and
 * dead-letter records, and the input offsets. The task restores the windows from the changelog on
 * assignment and on every rewind, and stands down and recovers when another member takes its id.
 */
export class WindowProcessor implements PartitionState {
  readonly #options: ProcessorOptions
  readonly #task: StreamTask
  readonly #owned = new Map<number, OwnedWindows>()
  #reader: PartitionReader | undefined
  lastRestore: RestoreReport | undefined
  readonly #events: Counter
  readonly #late: Counter
  readonly #deadLetters: Counter
  readonly #restoreSeconds: Histogram

  constructor (options: ProcessorOptions) {
    this.#options = options
    const { groupId, instanceId, topics, metrics } = options
    const registers = [metrics]
    this.#events = new Counter({ name: 'analytics_events_total', help: 'events counted into windows', registers })
    this.#late = new Counter({
      name: 'analytics_late_events_total',
      help: 'events that arrived after a window of theirs had closed (sent to the late topic)',
      registers,
    })
    this.#deadLetters = new Counter({
      name: 'analytics_dead_letters_total', help: 'malformed input records sent to the dead-letter topic', registers,
    })
    this.#restoreSeconds = new Histogram({
      name: 'analytics_restore_seconds',
      help: 'time to restore owned partitions from the changelog',
      buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 30],
      registers,
    })
    const openWindows: Gauge = new Gauge({
      name: 'analytics_open_windows',
      help: 'windows held in memory',
      registers,
      collect: () => { openWindows.set([...this.#owned.values()].reduce((sum, o) => sum + o.windows.windows.size, 0)) },
    })
    this.#task = new StreamTask(options.client, {
      name: 'window processor',
      inputTopic: topics.input,
      deadLetterTopic: topics.deadLetter,
      groupId,
      transactionalId: `${groupId}-${instanceId}`,
      staticMembership: options.staticMembership,
      batchSize: 2_000,
      instanceVariable: 'ANALYTICS_INSTANCE_ID',
      recovery: 'recover',
      instanceId,
      commitAttempts: 3,
      commitIntervalMs: options.commitIntervalMs,
      ...(options.prefetch === undefined ? {} : { prefetch: options.prefetch }),
    }, this, options.log, processorMetrics(registers))
  }

  get transactionalId (): string {
    return this.#task.transactionalId
  }

  /** Ready once the group gave this instance its partitions (possibly none) and their state is restored. */
  readiness (): CheckResult {
    const problem = this.#task.problem
    if (problem !== undefined) return { ok: false, detail: problem }
    return { ok: true, detail: `owns partitions [${this.#task.ownedPartitions.join(',')}]` }
  }

  ownedPartitions (): number[] {
    return this.#task.ownedPartitions
  }

  async start (): Promise<void> {
    const { connection, groupId, instanceId } = this.#options
    this.#reader = await PartitionReader.connect(connection, `${groupId}-restore-${instanceId}`, 10)
    await this.#task.start()
  }

  /** Commits what was processed, then closes; a second call waits for the first. */
  async stop (): Promise<void> {
    await this.#task.stop()
    await this.#reader?.disconnect()
    this.#reader = undefined
  }

  async restore (partitions: number[]): Promise<void> {
    const started = performance.now()
    const { spec, longViewThresholdMs, topics } = this.#options
    const restored = new Map(partitions.map((p) => [p, new PartitionWindows(spec, longViewThresholdMs)]))
    const records = await this.#reader!.readToEnd(topics.changelog, partitions, ({ partition, key, value }) => {
      if (key !== null) restored.get(partition)?.restore(key, value?.toString('utf8') ?? null)
    })
    for (const [partition, windows] of restored) this.#owned.set(partition, { windows, side: [] })
    const ms = performance.now() - started
    this.#restoreSeconds.observe(ms / 1000)
    const windows = [...restored.values()].reduce((sum, w) => sum + w.windows.size, 0)
    this.lastRestore = { partitions, records, windows, ms: Math.round(ms) }
    this.#options.log.info({ restore: this.lastRestore }, 'restored window state from the changelog')
  }

  release (partitions: number[]): void {
    for (const partition of partitions) this.#owned.delete(partition)
  }

  process (partition: number, messages: KafkaMessage[]): void {
    const owned = this.#owned.get(partition)
    if (owned === undefined) return
    // one clock reading and one counter update per batch, not per event
    const now = Date.now()
    let counted = 0
    for (const message of messages) counted += this.#count(owned, partition, message, now)
    this.#events.inc(counted)
    owned.windows.closeExpired()
  }

  /**
   * Stream time moves only with input: a partition that has had none for idleCloseMs closes its
   * windows on the wall clock once their end plus grace has passed, so their finals need no new traffic.
   */
  outputs (partition: number, idleMs: number): TopicRecords[] {
    const owned = this.#owned.get(partition)
    if (owned === undefined) return []
    const { idleCloseMs, topics } = this.#options
    if (idleCloseMs > 0 && idleMs >= idleCloseMs) owned.windows.closeOnClock(Date.now())
    const { updated, closed, streamTime } = owned.windows.pending()
    const output: OutgoingRecord[] = []
    const compat: OutgoingRecord[] = []
    const changelog: OutgoingRecord[] = []
    for (const [windows, final] of [[updated, false], [closed, true]] as const) {
      for (const window of windows) {
        output.push({ key: window.page, value: JSON.stringify(windowRecord(window, final)) })
        if (topics.compat !== undefined) compat.push(labCountMessage(window, final))
        changelog.push(final ? windowTombstone(window, partition) : windowUpdate(window, partition))
      }
    }
    if (streamTime !== undefined) changelog.push(streamTimeRecord(streamTime, partition))
    return [
      { topic: topics.output, messages: output },
      ...(topics.compat !== undefined ? [{ topic: topics.compat, messages: compat }] : []),
      { topic: topics.changelog, messages: changelog },
      ...owned.side,
    ]
  }

  committed (partitions: number[]): void {
    for (const partition of partitions) {
      const owned = this.#owned.get(partition)
      owned?.windows.committed()
      if (owned !== undefined) owned.side = []
    }
  }

  /** 1 when the event counted into its windows (late or not), 0 for a dead letter. */
  #count (owned: OwnedWindows, partition: number, message: KafkaMessage, now: number): number {
    const { topics, maxFutureMs, timeSource, groupId } = this.#options
    let event
    let time
    try {
      event = this.#options.inputValidated === true
        ? decodeValidatedPageEvent(message.value)
        : decodePageEvent(message.value)
      time = this.#eventTime(event, message)
      if (maxFutureMs > 0 && time > now + maxFutureMs) {
        // stream time would jump ahead and close every window of the partition at once
        const limit = `must not be more than ${maxFutureMs} ms ahead of the clock`
        throw new InvalidPageEventError(timeSource, `${limit} (got ${new Date(time).toISOString()})`)
      }
    } catch (err) {
      const source = { topic: topics.input, partition, message }
      const letter = deadLetterMessage(source, err as Error, { role: 'analytics', consumerGroup: groupId })
      owned.side.push({ topic: topics.deadLetter, messages: [letter] })
      this.#deadLetters.inc()
      return 0
    }
    // stream time never passes the wall clock, whatever the date of an event within maxFutureMs
    const { missed } = owned.windows.add(event, now, time)
    if (missed === 0) return 1
    const headers = {
      ...(message.headers ?? {}),
      [LATE_HEADERS.streamTime]: new Date(owned.windows.streamTime).toISOString(),
      [LATE_HEADERS.missed]: String(missed),
    }
    owned.side.push({ topic: topics.late, messages: [{ key: message.key ?? null, value: message.value, headers }] })
    this.#late.inc()
    return 1
  }

  #eventTime (event: PageEvent, message: KafkaMessage): number {
    if (this.#options.timeSource === 'date') return eventTime(event)
    const timestamp = Number(message.timestamp)
    if (!Number.isSafeInteger(timestamp) || timestamp < 0) {
      throw new InvalidPageEventError('timestamp', `the record has no timestamp (got ${message.timestamp})`)
    }
    return timestamp
  }
}

/** The processor's own metric names for what its transactions and stand-downs did. */
function processorMetrics (registers: Registry[]): StreamTaskObserver {
  const transactions = new Counter({
    name: 'analytics_transactions_total', help: 'transactions by result', labelNames: ['result'], registers,
  })
  const fatalConsumerErrors = new Counter({
    name: 'analytics_consumer_fatal_errors_total',
    help: 'fatal errors of the processor consumer (static member fenced, Local: Fatal error)',
    registers,
  })
  const standDowns = new Counter({
    name: 'analytics_stand_downs_total',
    help: 'times the processor closed its clients and stopped processing, by reason',
    labelNames: ['reason'],
    registers,
  })
  const recoveries = new Counter({
    name: 'analytics_recoveries_total',
    help: 'times a stood-down processor opened new clients and took part in the group again',
    registers,
  })
  return {
    committed: () => { transactions.inc({ result: 'committed' }) },
    aborted: () => { transactions.inc({ result: 'aborted' }) },
    producerReplaced: () => {},
    consumerFailed: () => { fatalConsumerErrors.inc() },
    stoodDown: (reason) => { standDowns.inc({ reason }) },
    recovered: () => { recoveries.inc() },
  }
}
