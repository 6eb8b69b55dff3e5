import type { Admin } from '@pagestream/core'

/**
 * The changelog has as many partitions as the input: state of input partition N is written to and
 * restored from changelog partition N. An existing changelog with another count is refused.
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
      configEntries: [{ name: 'cleanup.policy', value: 'compact' }, { name: 'min.compaction.lag.ms', value: '0' }],
    }],
  })
}
