import { Type } from '@sinclair/typebox'
import { type Role, TopicName, commonConfig, consumerProperties, deadLetterTopic, producerProperties } from '@pagestream/core'
import { EventLogger } from './event-logger.js'

const config = {
  ...commonConfig('consumer', 8083),
  CONSUMER_TOPIC: TopicName('R1', 'topic whose events are logged'),
  CONSUMER_GROUP_ID: Type.String({ minLength: 1, default: 'pagestream-consumer', description: 'consumer group' }),
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
    let joined = false
    let partitions = 0
    const consumer = fastify.kafka.client.consumer(consumerProperties({
      groupId: config.CONSUMER_GROUP_ID,
      rebalance: (kind, assignment) => {
        joined = true
        partitions = kind === 'assign' ? assignment.length : 0
      },
    }))
    await consumer.connect()
    fastify.health.addCheck('consumer-group', () => joined ? { ok: true } : { ok: false, detail: `not yet in group ${config.CONSUMER_GROUP_ID}` })
    fastify.addHook('onClose', async () => {
      await consumer.disconnect()
      await dlqProducer.disconnect()
    })

    const logger = new EventLogger(consumer, dlqProducer, fastify.log.child({ component: 'event-logger' }), fastify.metrics,
      { role: 'consumer', consumerGroup: config.CONSUMER_GROUP_ID })
    await logger.run(topic)

    fastify.get('/status', async () => ({ topic, group: config.CONSUMER_GROUP_ID, partitions, ...logger.stats }))
  },
}
