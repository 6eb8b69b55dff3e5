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
  const [source] = await admin.fetchTopicMetadata({ topics: [input] })
  const partitions = source?.partitions.length ?? 0
  if ((await admin.listTopics()).includes(changelog)) {
    const [existing] = await admin.fetchTopicMetadata({ topics: [changelog] })
    if (existing?.partitions.length !== partitions) {
      throw new Error(`changelog ${changelog} has ${existing?.partitions.length} partitions but ${input} has ${partitions}; they must match`)
    }
    return
  }
  await admin.createTopics({
    timeout: 10_000,
    topics: [{
      topic: changelog,
      numPartitions: partitions,
      replicationFactor: replication,
      configEntries: Object.entries(CHANGELOG_CONFIG).map(([name, value]) => ({ name, value })),
    }],
  })
}
