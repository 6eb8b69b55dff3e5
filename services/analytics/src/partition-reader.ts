import ckjs from '@confluentinc/kafka-javascript'
import type { LibrdKafkaError, Message } from '@confluentinc/kafka-javascript'

/** Most records one poll of follow() hands over. */
const FOLLOW_BATCH = 1_000

/** librdkafka's logical offset for "the first offset the partition still holds". */
export const OFFSET_BEGINNING = -2
/** ...and for "the next offset that will be written". */
export const OFFSET_END = -1

export interface ReaderRecord {
  partition: number
  offset: number
  key: string | null
  value: Buffer | null
}

function keyOf (message: Message): string | null {
  if (message.key === undefined || message.key === null) return null
  return typeof message.key === 'string' ? message.key : message.key.toString('utf8')
}

/**
 * A consumer of explicitly assigned partitions, outside any consumer group (the KafkaJS-style
 * consumer only subscribes). Reads read_committed, so records of aborted transactions never show,
 * and `partition.eof` fires at the last stable offset: the end of what is committed.
 */
export class PartitionReader {
  readonly #consumer: InstanceType<typeof ckjs.KafkaConsumer>
  #following: Promise<void> | undefined
  #stopping = false

  private constructor (consumer: InstanceType<typeof ckjs.KafkaConsumer>) {
    this.#consumer = consumer
  }

  /** fetchWaitMs: short for reading to the end (the fetch response tells the end), longer for following. */
  static async connect (
    connection: Record<string, string>, groupId: string, fetchWaitMs: number
  ): Promise<PartitionReader> {
    const consumer = new ckjs.KafkaConsumer({
      ...connection,
      // never joins this group and never commits: assign() only; librdkafka still wants a group id
      'group.id': groupId,
      'enable.auto.commit': false,
      'enable.partition.eof': true,
      'isolation.level': 'read_committed',
      'auto.offset.reset': 'earliest',
      'fetch.wait.max.ms': fetchWaitMs,
      'allow.auto.create.topics': false,
    }, {})
    consumer.setDefaultConsumeTimeout(100)
    // return what is there as soon as something is, instead of waiting out the timeout for a full batch
    ;(consumer as unknown as {
      setDefaultIsTimeoutOnlyForFirstMessage(only: boolean): void,
    }).setDefaultIsTimeoutOnlyForFirstMessage(true)
    await new Promise<void>((resolve, reject) => {
      consumer.connect({ timeout: 10_000 }, (err) => { if (err) reject(err); else resolve() })
    })
    return new PartitionReader(consumer)
  }

  /**
   * Reads the partitions from their beginning to their current end and returns how many records it
   * read. Throws if the end is not reached before the deadline.
   */
  async readToEnd (
    topic: string, partitions: number[], onRecord: (record: ReaderRecord) => void, timeoutMs = 120_000
  ): Promise<number> {
    if (partitions.length === 0) return 0
    const waiting = new Set(partitions)
    const onEof = (eof: { topic: string, partition: number }) => {
      if (eof.topic === topic) waiting.delete(eof.partition)
    }
    this.#consumer.on('partition.eof', onEof)
    this.#consumer.assign(partitions.map((partition) => ({ topic, partition, offset: OFFSET_BEGINNING })))
    let records = 0
    const deadline = Date.now() + timeoutMs
    try {
      while (waiting.size > 0) {
        if (Date.now() > deadline) {
          throw new Error(`reading ${topic} [${[...waiting].join(',')}] to its end took longer than ${timeoutMs} ms`)
        }
        const messages = await this.#consume(10_000)
        for (const message of messages) {
          if (message.topic !== topic) continue
          records += 1
          onRecord({ partition: message.partition, offset: message.offset, key: keyOf(message), value: message.value })
        }
      }
      return records
    } finally {
      this.#consumer.removeListener('partition.eof', onEof)
      this.#consumer.unassign()
    }
  }

  /** The first offset of each partition written at or after `timestamp` (OFFSET_END when none is). */
  async offsetsForTime (topic: string, partitions: number[], timestamp: number): Promise<Map<number, number>> {
    const found = await new Promise<Array<{ partition: number, offset: number }>>((resolve, reject) => {
      this.#consumer.offsetsForTimes(partitions.map((partition) => ({ topic, partition, offset: timestamp })), 10_000,
        (err: LibrdKafkaError, offsets) => { if (err) reject(err); else resolve(offsets) })
    })
    return new Map(found.map(({ partition, offset }) => [partition, offset < 0 ? OFFSET_END : offset]))
  }

  /**
   * Assigns partitions at the given offsets and calls back for every record until disconnected. Polls
   * back to back, each poll returning as soon as a record is there: the client's own flowing loop sleeps
   * 500 ms after every empty poll, which a record arriving meanwhile waited out (row `latency` of
   * `make bench`), and with that sleep shortened its disconnect hung.
   */
  follow (
    assignments: Array<{ topic: string, partition: number, offset: number }>,
    onRecord: (record: ReaderRecord) => void,
    onEof: (partition: number) => void
  ): void {
    this.#consumer.on('partition.eof', (eof: { partition: number }) => { onEof(eof.partition) })
    this.#consumer.assign(assignments)
    this.#following = (async () => {
      while (!this.#stopping) {
        let messages: Message[]
        try {
          messages = await this.#consume(FOLLOW_BATCH)
        } catch {
          // the flowing loop dropped these too (broker away): try again shortly, librdkafka reconnects
          await new Promise((resolve) => setTimeout(resolve, 100))
          continue
        }
        for (const message of messages) {
          onRecord({ partition: message.partition, offset: message.offset, key: keyOf(message), value: message.value })
        }
      }
    })()
  }

  #consume (size: number): Promise<Message[]> {
    return new Promise((resolve, reject) => {
      this.#consumer.consume(size, (err, messages) => { if (err) reject(err); else resolve(messages) })
    })
  }

  async disconnect (): Promise<void> {
    this.#stopping = true
    // a poll under way ends within its 100 ms timeout
    await this.#following
    await new Promise<void>((resolve) => { this.#consumer.disconnect(() => resolve()) })
  }
}
