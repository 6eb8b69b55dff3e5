import rateLimit from '@fastify/rate-limit'
import { Type } from '@sinclair/typebox'
import {
  ConfigError, CsvList, ROLE_PORTS, type Role, allowCrossOrigin, commonConfig, connectionProperties, corsConfig,
  pageEventNameProblems, producerProperties, traceRequests,
} from '@pagestream/core'
import { acceptJsonOnly } from './json-body.js'
import { Publisher } from './publisher.js'
import { RecordSender } from './record-sender.js'
import { publishRoutes } from './routes.js'
import { TopicPolicy } from './topic-policy.js'

const config = {
  ...commonConfig('producer', ROLE_PORTS.producer),
  ...corsConfig(),
  PRODUCER_TOPICS: CsvList({
    default: 'R1,R2', description: 'topics HTTP clients may publish to (created at start-up)',
  }),
  PRODUCER_USERS: CsvList({ default: 'U1,U2', description: 'users GET /publish picks from at random' }),
  PUBLISH_TIMEOUT_MS: Type.Integer({
    minimum: 100, default: 5_000, description: 'longest wait for the broker to acknowledge, then 503',
  }),
  PRODUCER_LINGER_MS: Type.Integer({
    minimum: 0,
    maximum: 1_000,
    default: 0,
    description: 'librdkafka linger.ms: how long a record waits to share a request with others',
  }),
  EVENTS_MAX_BATCH: Type.Integer({ minimum: 1, default: 500, description: 'most events in one POST /events request' }),
  BODY_LIMIT_BYTES: Type.Integer({ minimum: 1024, default: 1_048_576, description: 'largest request body, then 413' }),
  RATE_LIMIT_MAX: Type.Integer({
    minimum: 1, default: 1_200, description: 'publish requests per client address and window, then 429',
  }),
  RATE_LIMIT_WINDOW_MS: Type.Integer({ minimum: 1_000, default: 60_000, description: 'rate-limit window' }),
}

export const role: Role<typeof config> = {
  name: 'producer',
  description: 'publishes PageEvents from HTTP (GET /publish/:topic/:name, POST /events/:topic)',
  config,
  check: (config) => {
    const problems = [
      ...TopicPolicy.allowListProblems(config.PRODUCER_TOPICS),
      // GET /publish picks its user from the list: a user no PageEvent can carry would fail every request
      ...pageEventNameProblems('PRODUCER_USERS', 'user', config.PRODUCER_USERS),
    ]
    if (problems.length > 0) throw new ConfigError(problems)
  },
  app: async (fastify, { config }) => {
    const policy = new TopicPolicy(config.PRODUCER_TOPICS)
    await fastify.kafka.ensureTopics(policy.topics.map((topic) => ({ topic })))

    const sender = await RecordSender.connect({
      ...connectionProperties(config),
      ...producerProperties({ deliveryTimeoutMs: config.PUBLISH_TIMEOUT_MS, lingerMs: config.PRODUCER_LINGER_MS }),
    }, fastify.log.child({ component: 'producer' }))
    fastify.addHook('onClose', async () => {
      await sender.flush(config.PUBLISH_TIMEOUT_MS).catch((err: Error) => fastify.log.warn({ err },
        'flush on close failed'))
      await sender.disconnect()
    })

    acceptJsonOnly(fastify)
    await allowCrossOrigin(fastify, {
      origins: config.CORS_ORIGINS, methods: ['GET', 'POST'], allowedHeaders: ['content-type'],
    })
    await fastify.register(async (publishing) => {
      // publish requests only: probes and scrapes would bury them
      traceRequests(publishing)
      await publishing.register(rateLimit, { max: config.RATE_LIMIT_MAX, timeWindow: config.RATE_LIMIT_WINDOW_MS })
      await publishing.register(publishRoutes, {
        policy,
        publisher: new Publisher(
          sender,
          fastify.kafka,
          fastify.metrics,
          fastify.log.child({ component: 'publisher' }),
          config.PUBLISH_TIMEOUT_MS + 500,
          policy.topics
        ),
        users: config.PRODUCER_USERS,
        maxBatch: config.EVENTS_MAX_BATCH,
        bodyLimit: config.BODY_LIMIT_BYTES,
      })
    })
  },
}
