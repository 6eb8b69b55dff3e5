import { Type } from '@sinclair/typebox'
import {
  type Role, TopicName, commonConfig, deadLetterTopic, producerProperties, watchConsumerLag,
} from '@pagestream/core'
import { EventLogger } from './event-logger.js'
import { GroupMember } from './group-member.js'

const config = {
  ...commonConfig('consumer', 8083),
  CONSUMER_TOPIC: TopicName('R1', 'topic whose events are logged'),
  CONSUMER_GROUP_ID: Type.String({ minLength: 1, default: 'pagestream-consumer', description: 'consumer group' }),
  CONSUMER_INSTANCE_ID: Type.String({
    pattern: '^([a-zA-Z0-9._-]{1,200})?$',
    default: '',
    description: 'group.instance.id: empty joins as a dynamic member; set, a static one (a restart keeps its ' +
      'partitions without a rebalance), and it must then be unique per replica: a twin with the same id fences it',
  }),
}

export const role: Role<typeof config> = {
  name: 'consumer',
  description: 'logs every PageEvent of a topic; malformed records go to <topic>.dlq',
  config,
  app: async (fastify, { config }) => {
    const topic = config.CONSUMER_TOPIC
    await fastify.kafka.ensureTopics([{ topic }, { topic: deadLetterTopic(topic) }])

    // a DLQ outage fails the batch in seconds (and it is retried), well inside max.poll.interval.ms
    const dlqProducer = fastify.kafka.client.producer(producerProperties({ deliveryTimeoutMs: 10_000 }))
    await dlqProducer.connect()
    const logger = new EventLogger(dlqProducer, fastify.log.child({ component: 'event-logger' }), fastify.metrics,
      { role: 'consumer', consumerGroup: config.CONSUMER_GROUP_ID })
    const member = new GroupMember({
      client: fastify.kafka.client,
      topic,
      groupId: config.CONSUMER_GROUP_ID,
      instanceId: config.CONSUMER_INSTANCE_ID === '' ? undefined : config.CONSUMER_INSTANCE_ID,
      log: fastify.log.child({ component: 'consumer' }),
      metrics: fastify.metrics,
    }, (batch) => logger.handleBatch(batch))
    fastify.health.addCheck('consumer-group', () => member.readiness())
    fastify.addHook('onClose', async () => {
      await member.stop()
      await dlqProducer.disconnect()
    })
    await member.start()
    await watchConsumerLag(fastify, [{ group: config.CONSUMER_GROUP_ID, topic }])

    fastify.get('/status', async () => ({
      topic,
      group: config.CONSUMER_GROUP_ID,
      instanceId: config.CONSUMER_INSTANCE_ID === '' ? null : config.CONSUMER_INSTANCE_ID,
      partitions: member.partitions ?? 0,
      ...logger.stats,
      fatalErrors: member.fatalErrors,
      lastError: member.lastError ?? null,
    }))
  },
}
