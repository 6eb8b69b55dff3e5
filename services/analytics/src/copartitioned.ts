import { setTimeout as sleep } from 'node:timers/promises'
import ckjs from '@confluentinc/kafka-javascript'
import type { Admin } from '@pagestream/core'

/** Creates `topic` with the partition count of `source`, or refuses an existing one whose count differs. */
export async function ensureCopartitioned (
  admin: Admin, source: string, topic: string, replication: number, config: Readonly<Record<string, string>> = {}
): Promise<void> {
  const partitions = await partitionCount(admin, source)
  // a topic created a moment ago may be missing from the list yet, and then creating it answers "exists"
  const exists = (await admin.listTopics()).includes(topic) || !await admin.createTopics({
    timeout: 10_000,
    topics: [{
      topic,
      numPartitions: partitions,
      replicationFactor: replication,
      configEntries: Object.entries(config).map(([name, value]) => ({ name, value })),
    }],
  })
  // the next reader of its metadata (a consumer, or the changelog made like it) must find it
  const settled = (count: number | undefined) => count !== undefined && (exists || count === partitions)
  const deadline = Date.now() + 10_000
  let found = await foundPartitions(admin, topic)
  while (!settled(found) && Date.now() < deadline) {
    await sleep(100)
    found = await foundPartitions(admin, topic)
  }
  if (found !== partitions) {
    throw new Error(`${topic} has ${found} partitions but ${source} has ${partitions}; they must match`)
  }
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

async function foundPartitions (admin: Admin, topic: string): Promise<number | undefined> {
  const [metadata] = await admin.fetchTopicMetadata({ topics: [topic] }).catch(() => [])
  return metadata?.partitions.length
}
