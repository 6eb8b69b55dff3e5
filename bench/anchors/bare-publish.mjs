// The publish row's anchor: bare Fastify (defaults, no logger, no plugins) serving the producer's
// GET /publish/:topic/:name with the same schemas and the same event, without Kafka.
import Fastify from 'fastify'
import { PageEventSchema, parsePageEvent, randomPageEvent } from '@pagestream/core'

const fastify = Fastify()
const params = {
  type: 'object',
  properties: { topic: { type: 'string' }, name: { type: 'string' } },
  required: ['topic', 'name'],
}
fastify.get('/publish/:topic/:name', { schema: { params, response: { 200: PageEventSchema } } }, async (request) => {
  return parsePageEvent(randomPageEvent({ pages: [request.params.name], users: ['U1', 'U2'] }))
})
fastify.get('/health/ready', async () => ({ status: 'ok' }))
process.once('SIGTERM', () => { void fastify.close() })
await fastify.listen({ host: process.env.HTTP_HOST, port: Number(process.env.HTTP_PORT) })
