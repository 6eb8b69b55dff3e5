import { randomUUID } from 'node:crypto'
import type { FastifyBaseLogger } from 'fastify'
import type { Admin, CheckResult } from '@pagestream/core'
import { Value } from '@sinclair/typebox/value'
import { PartitionReader } from './partition-reader.js'
import type { AnalyticsView } from './view.js'
import { WindowRecordSchema } from './window-record.js'

/**
 * Feeds the view from every partition of R4, outside any consumer group, read_committed, starting
 * at the records written within the view's retention (found with offsetsForTimes).
 */
export class ViewFeed {
  #reader: PartitionReader | undefined
  readonly #catchingUp = new Set<number>()
  #started = false

  constructor (private readonly options: {
    admin: Admin
    connection: Record<string, string>
    topic: string
    view: AnalyticsView
    log: FastifyBaseLogger
    onChange: () => void
  }) {}

  async start (): Promise<void> {
    const { admin, connection, topic, view, log } = this.options
    const [metadata] = await admin.fetchTopicMetadata({ topics: [topic] })
    const partitions = (metadata?.partitions ?? []).map((p) => p.partitionId)
    const reader = await PartitionReader.connect(connection, `pagestream-analytics-view-${randomUUID()}`, 100)
    this.#reader = reader
    const offsets = await reader.offsetsForTime(topic, partitions, Date.now() - view.retentionMs)
    for (const partition of partitions) this.#catchingUp.add(partition)
    reader.follow(
      partitions.map((partition) => ({ topic, partition, offset: offsets.get(partition)! })),
      (record) => {
        let parsed: unknown
        try {
          parsed = JSON.parse(record.value?.toString('utf8') ?? 'null')
        } catch { parsed = undefined }
        if (!Value.Check(WindowRecordSchema, parsed)) {
          log.warn({ partition: record.partition, offset: record.offset },
            'skipping an output record that is not a window')
          return
        }
        if (view.apply(parsed)) this.options.onChange()
      },
      (partition) => { this.#catchingUp.delete(partition) }
    )
    this.#started = true
    log.info({ topic, partitions: partitions.length }, 'view follows the output topic')
  }

  readiness (): CheckResult {
    if (!this.#started) return { ok: false, detail: 'connecting to the output topic' }
    if (this.#catchingUp.size > 0) {
      return {
        ok: false, detail: `catching up on partitions [${[...this.#catchingUp].join(',')}]`,
      }
    }
    return { ok: true }
  }

  async stop (): Promise<void> {
    await this.#reader?.disconnect()
  }
}
