import { type Static, Type } from '@sinclair/typebox'
import {
  ROLE_PORTS, type Role, TopicName, commonConfig, deadLetterTopic, producerProperties, watchConsumerLag,
} from '@pagestream/core'
import { EventLogger } from './event-logger.js'
import { GroupMember } from './group-member.js'

const config = {
  ...commonConfig('consumer', ROLE_PORTS.consumer),
  CONSUMER_TOPIC: TopicName('R1', 'topic whose events are logged'),
  CONSUMER_GROUP_ID: Type.String({ minLength: 1, default: 'pagestream-consumer', description: 'consumer group' }),
  CONSUMER_INSTANCE_ID: Type.String({
    pattern: '^([a-zA-Z0-9._-]{1,200})?$',
    default: '',
    description: 'group.instance.id: empty joins as a dynamic member; set, a static one (a restart keeps its ' +
      'partitions without a rebalance), and it must then be unique per replica: a twin with the same id fences it',
  }),
}

const Status = Type.Object({
  topic: Type.String(),
  group: Type.String(),
  instanceId: Type.Union([Type.String(), Type.Null()], { description: 'group.instance.id when a static member' }),
  partitions: Type.Integer({ description: 'partitions of the topic assigned now' }),
  logged: Type.Integer(),
  deadLettered: Type.Integer(),
  fatalErrors: Type.Integer({ description: 'fatal consumer errors, each followed by a new consumer' }),
  lastError: Type.Union([Type.String(), Type.Null()]),
})
export type ConsumerStatus = Static<typeof Status>

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

    fastify.get('/status', { schema: { response: { 200: Status } } }, async (): Promise<ConsumerStatus> => ({
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
