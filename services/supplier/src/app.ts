import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { Type } from '@sinclair/typebox'
import {
  ConfigError, CsvList, ROLE_PORTS, type Role, TopicName, commonConfig, pageEventNameProblems, producerProperties,
} from '@pagestream/core'
import { SupplyLoop, SupplyStatusSchema, labEventSource } from './supply-loop.js'

const config = {
  ...commonConfig('supplier', ROLE_PORTS.supplier),
  SUPPLIER_TOPIC: TopicName('R2', 'topic the random events go to'),
  SUPPLIER_INTERVAL_MS: Type.Integer({
    minimum: 1, default: 100, description: 'one event every this many milliseconds',
  }),
  SUPPLIER_PAGES: CsvList({ default: 'P1,P2', description: 'pages to pick from (the lab dashboard plots P1 and P2)' }),
  SUPPLIER_USERS: CsvList({ default: 'U1,U2', description: 'users to pick from' }),
  SUPPLIER_MAX_DURATION_MS: Type.Integer({
    // crypto.randomInt's limit
    minimum: 1, maximum: 2 ** 48 - 1, default: 10_000, description: 'durations are random below this',
  }),
  SUPPLIER_AUTOSTART: Type.Boolean({
    default: true, description: 'start supplying at start-up (else wait for POST /supplier/resume)',
  }),
}

export const role: Role<typeof config> = {
  name: 'supplier',
  description: 'sends a random PageEvent to a topic at a steady rate; pause, resume and re-rate over HTTP',
  config,
  check: (config) => {
    const problems = [
      ...pageEventNameProblems('SUPPLIER_PAGES', 'name', config.SUPPLIER_PAGES),
      ...pageEventNameProblems('SUPPLIER_USERS', 'user', config.SUPPLIER_USERS),
    ]
    if (problems.length > 0) throw new ConfigError(problems)
  },
  app: async (base, { config }) => {
    const fastify = base.withTypeProvider<TypeBoxTypeProvider>()
    await fastify.kafka.ensureTopics([{ topic: config.SUPPLIER_TOPIC }])
    const producer = fastify.kafka.client.producer(producerProperties({ lingerMs: 5, deliveryTimeoutMs: 5_000 }))
    await producer.connect()

    const loop = new SupplyLoop(producer, config.SUPPLIER_TOPIC,
      labEventSource(config.SUPPLIER_PAGES, config.SUPPLIER_USERS, config.SUPPLIER_MAX_DURATION_MS),
      config.SUPPLIER_INTERVAL_MS, fastify.log.child({ component: 'supply-loop' }), fastify.metrics)
    fastify.addHook('onReady', async () => { if (config.SUPPLIER_AUTOSTART) loop.resume() })
    fastify.addHook('onClose', async () => {
      await loop.stop()
      await producer.disconnect()
    })

    const answersStatus = { schema: { response: { 200: SupplyStatusSchema } } }
    fastify.get('/supplier', answersStatus, async () => loop.status)
    fastify.post('/supplier/pause', answersStatus, async () => { loop.pause(); return loop.status })
    fastify.post('/supplier/resume', answersStatus, async () => { loop.resume(); return loop.status })
    fastify.put('/supplier/rate', {
      schema: {
        body: Type.Object({
          intervalMs: Type.Integer({
            minimum: 1, maximum: 3_600_000, description: 'milliseconds between events, 1 to 3600000',
          }),
        }),
        response: { 200: SupplyStatusSchema },
      },
    }, async (request) => { loop.setInterval(request.body.intervalMs); return loop.status })
  },
}
