import ckjs from '@confluentinc/kafka-javascript'
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import { Gauge, type Registry } from 'prom-client'
import type { Admin, Consumer, KafkaClient } from './kafka.js'

export const CONSUMER_LAG_METRIC = 'pagestream_consumer_lag'

/** A consumer group and the topic it reads, whose lag is measured. */
export interface LagSubject { group: string, topic: string }

/**
 * One gauge per registry: a role with two consuming stages (analytics) shows both under one name.
 * The role label comes from the registry's default labels.
 */
function lagGauge (registry: Registry): Gauge<'group' | 'topic' | 'partition'> {
  const existing = registry.getSingleMetric(CONSUMER_LAG_METRIC)
  if (existing !== undefined) return existing as Gauge<'group' | 'topic' | 'partition'>
  return new Gauge({
    name: CONSUMER_LAG_METRIC,
    help: 'records of a partition not yet processed by the consumer group: last stable offset minus the ' +
      "group's committed offset (the whole group's view, the same from every replica)",
    labelNames: ['group', 'topic', 'partition'],
    registers: [registry],
  })
}

/** Records behind: from the committed offset, or from the log start when the group committed nothing yet. */
export function partitionLag (committed: string | null, end: string, start: string): number {
  const from = committed !== null && BigInt(committed) >= 0n ? BigInt(committed) : BigInt(start)
  const lag = BigInt(end) - from
  return lag > 0n ? Number(lag) : 0
}

/**
 * Measures consumer-group lag with the admin client on a timer, away from the consume loop: a slow
 * broker answer delays the gauge, never a batch. Read-committed end offsets (the last stable offset),
 * since the roles read committed: an open transaction is not lag yet. On a transactional input the
 * commit marker takes an offset after the last record, so a caught-up group may read 1 there.
 * The committed offsets come from a consumer of the group's id that never subscribes (so never joins
 * the group): the admin's fetchOffsets crashes librdkafka 2.x (SIGSEGV) in this client version.
 */
export class ConsumerLag {
  readonly #gauge: Gauge<'group' | 'topic' | 'partition'>
  #timer: NodeJS.Timeout | undefined
  #refreshing: Promise<void> | undefined
  readonly #readers = new Map<string, Consumer>()

  constructor (
    private readonly client: KafkaClient,
    private readonly admin: Admin,
    registry: Registry,
    private readonly subjects: LagSubject[],
    private readonly log: FastifyBaseLogger,
    private readonly intervalMs = 5_000
  ) {
    this.#gauge = lagGauge(registry)
  }

  async start (): Promise<void> {
    for (const group of new Set(this.subjects.map((subject) => subject.group))) {
      const reader = this.client.consumer({ 'group.id': group, 'enable.auto.commit': false })
      this.#readers.set(group, reader)
      await reader.connect()
    }
    void this.refresh()
    this.#timer = setInterval(() => { void this.refresh() }, this.intervalMs)
    this.#timer.unref()
  }

  /** One measurement of every subject; a refresh under way is joined, not doubled. */
  refresh (): Promise<void> {
    this.#refreshing ??= Promise.all(this.subjects.map((subject) => this.#measure(subject)))
      .then(() => {})
      .finally(() => { this.#refreshing = undefined })
    return this.#refreshing
  }

  async stop (): Promise<void> {
    clearInterval(this.#timer)
    await this.#refreshing
    await Promise.all([...this.#readers.values()].map((reader) => reader.disconnect()))
    this.#readers.clear()
  }

  async #measure ({ group, topic }: LagSubject): Promise<void> {
    // a generous timeout: librdkafka 2.x aborts the process on some admin requests that time out early
    const timeout = 10_000
    try {
      const isolationLevel = ckjs.KafkaJS.IsolationLevel.READ_COMMITTED
      const ends = await this.admin.fetchTopicOffsets(topic, { timeout, isolationLevel })
      const reader = this.#readers.get(group)
      if (reader === undefined) return
      const offsets = await reader.committed(ends.map(({ partition }) => ({ topic, partition })), timeout)
      const committed = new Map(offsets.map((o) => [o.partition, o.offset as string | null]))
      for (const end of ends) {
        const lag = partitionLag(committed.get(end.partition) ?? null, end.high, end.low)
        this.#gauge.set({ group, topic, partition: String(end.partition) }, lag)
      }
    } catch (err) {
      // the broker watch reports an unreachable broker; the gauge keeps its last values meanwhile
      this.log.debug({ err, group, topic }, 'could not measure consumer lag')
    }
  }
}

/** Shows the lag of the role's consumer groups on its /metrics while the role runs. */
export async function watchConsumerLag (
  fastify: FastifyInstance, subjects: LagSubject[], intervalMs?: number
): Promise<ConsumerLag> {
  const { client, admin } = fastify.kafka
  const lag = new ConsumerLag(client, admin, fastify.metrics, subjects,
    fastify.log.child({ component: 'consumer-lag' }), intervalMs)
  fastify.addHook('onClose', async () => { await lag.stop() })
  await lag.start()
  return lag
}
