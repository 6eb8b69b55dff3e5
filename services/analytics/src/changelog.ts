import { setTimeout as sleep } from 'node:timers/promises'
import ckjs from '@confluentinc/kafka-javascript'
import type { Admin } from '@pagestream/core'

/**
 * Compaction never touches the active segment, and by default a segment rolls only after 7 days or
 * 1 GiB: every window ever written would stay in the changelog for a week and each restore would
 * read all of it (readToEnd gives up after 120 s). Short segments and an eager cleaner keep the
 * changelog near the size of the open state: about the open windows plus what the last
 * ~10 minutes wrote (the roll interval) plus a dirty tenth.
 */
export const CHANGELOG_CONFIG: Readonly<Record<string, string>> = {
  'cleanup.policy': 'compact',
  'min.compaction.lag.ms': '0',
  'segment.ms': String(10 * 60_000),
  'segment.bytes': String(16 * 1024 * 1024),
  'min.cleanable.dirty.ratio': '0.1',
  // tombstones of final windows are dropped by the cleaner 10 minutes after compaction saw them
  'delete.retention.ms': String(10 * 60_000),
}

/**
 * The changelog has as many partitions as the input: state of input partition N is written to and
 * restored from changelog partition N. An existing changelog with another count is refused.
 * A new changelog gets CHANGELOG_CONFIG; an existing one is left as it is (the admin API of
 * @confluentinc/kafka-javascript has no describeConfigs/alterConfigs), see the README.
 */
export async function ensureChangelog (admin: Admin, input: string, changelog: string, replication: number): Promise<void> {
  await ensureCopartitioned(admin, input, changelog, replication, CHANGELOG_CONFIG)
}

/** Creates `topic` with the partition count of `source`, or refuses an existing one whose count differs. */
export async function ensureCopartitioned (
  admin: Admin, source: string, topic: string, replication: number, config: Readonly<Record<string, string>> = {},
): Promise<void> {
  const partitions = await partitionCount(admin, source)
  if ((await admin.listTopics()).includes(topic)) {
    const [existing] = await admin.fetchTopicMetadata({ topics: [topic] })
    if (existing?.partitions.length !== partitions) {
      const found = existing?.partitions.length
      throw new Error(`${topic} has ${found} partitions but ${source} has ${partitions}; they must match`)
    }
    return
  }
  await admin.createTopics({
    timeout: 10_000,
    topics: [{
      topic,
      numPartitions: partitions,
      replicationFactor: replication,
      configEntries: Object.entries(config).map(([name, value]) => ({ name, value })),
    }],
  })
  // the next reader of its metadata (a consumer, or the changelog made like it) must find it
  const deadline = Date.now() + 10_000
  while (!await hasPartitions(admin, topic, partitions) && Date.now() < deadline) await sleep(100)
}

/** The partition count of `topic`; one created a moment ago may not be in the metadata yet: wait for it a while. */
async function partitionCount (admin: Admin, topic: string): Promise<number> {
  const deadline = Date.now() + 10_000
  for (;;) {
    try {
      const [metadata] = await admin.fetchTopicMetadata({ topics: [topic] })
      return metadata?.partitions.length ?? 0
    } catch (err) {
      const unknown = (err as { code?: number }).code === ckjs.KafkaJS.ErrorCodes.ERR_UNKNOWN_TOPIC_OR_PART
      if (!unknown || Date.now() > deadline) throw err
      await sleep(100)
    }
  }
}

async function hasPartitions (admin: Admin, topic: string, partitions: number): Promise<boolean> {
  const [metadata] = await admin.fetchTopicMetadata({ topics: [topic] }).catch(() => [])
  return metadata?.partitions.length === partitions
}
