import fp from 'fastify-plugin'
import { BrokerWatch } from './broker-watch.js'
import type { CommonConfig } from './config.js'
import { type Admin, type KafkaClient, createKafkaClient, ensureTopics } from './kafka.js'
import type { TopicSpec } from './topics.js'

export interface KafkaContext {
  client: KafkaClient
  admin: Admin
  watch: BrokerWatch
  /** Creates the topics (with the role's partition and replication settings) unless they exist. */
  ensureTopics(topics: TopicSpec[]): Promise<void>
}

declare module 'fastify' {
  interface FastifyInstance { kafka: KafkaContext }
}

/**
 * The role's Kafka client and its admin connection. Producers and consumers are opened (and
 * closed) by the plugins that use them; this plugin closes only what it opened.
 */
export const kafkaPlugin = fp<{ config: CommonConfig }>(async (fastify, { config }) => {
  const client = createKafkaClient(config, fastify.log.child({ component: 'kafka' }))
  const admin = client.admin()
  await admin.connect()
  const watch = new BrokerWatch(admin)
  await watch.start()
  fastify.health.addCheck('broker', () => watch.reachable
    ? { ok: true }
    : { ok: false, detail: `brokers ${config.KAFKA_BROKERS.join(',')} do not answer: ${watch.lastError ?? 'unknown'}` })

  fastify.decorate('kafka', {
    client,
    admin,
    watch,
    ensureTopics: (topics) => ensureTopics(admin, topics, {
      partitions: config.KAFKA_TOPIC_PARTITIONS,
      replication: config.KAFKA_TOPIC_REPLICATION,
    }),
  } satisfies KafkaContext)

  fastify.addHook('onClose', async () => {
    await watch.stop()
    await admin.disconnect()
  })
}, { name: 'pagestream-kafka', dependencies: ['pagestream-health'] })
