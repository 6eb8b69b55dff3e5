import { type TypeBoxTypeProvider, TypeBoxValidatorCompiler } from '@fastify/type-provider-typebox'
import { type TSchema, Type } from '@sinclair/typebox'
import { ErrorResponse, PageEventInputSchema, PageEventSchema, type PageEvent } from '@pagestream/core'
import type { FastifyPluginAsync } from 'fastify'
import type { FastifyRouteSchemaDef } from 'fastify/types/schema.js'
import { eventBodyCheck, labEvent } from './event-body.js'
import { type Publisher, PublishedEventSchema } from './publisher.js'
import type { TopicPolicy } from './topic-policy.js'

export interface PublishRoutesOptions {
  policy: TopicPolicy
  publisher: Publisher
  users: readonly string[]
  maxBatch: number
  bodyLimit: number
}

const TopicParam = Type.String({ description: 'topic to publish to; must be on the allow-list' })
const errors = Object.fromEntries([400, 403, 413, 415, 429, 503].map((status) => [status, ErrorResponse]))

/** Where events enter pagestream over HTTP. */
export const publishRoutes: FastifyPluginAsync<PublishRoutesOptions> = async (base, options) => {
  const fastify = base.withTypeProvider<TypeBoxTypeProvider>()
  const { policy, publisher } = options

  fastify.addHook('preValidation', async (request) => {
    policy.check((request.params as { topic: string }).topic)
  })

  // The lab's endpoint: a random user and duration for the page named in the path.
  fastify.get('/publish/:topic/:name', {
    schema: {
      params: Type.Object({ topic: TopicParam, name: Type.String({ description: 'page name, 1 to 256 characters' }) }),
      response: { 200: PageEventSchema, ...errors },
    },
  }, async (request) => {
    const event = labEvent(request.params.name, options.users)
    await publisher.publish(request.params.topic, [event])
    return event
  })

  const checkBody = eventBodyCheck(options.maxBatch)
  fastify.post('/events/:topic', {
    bodyLimit: options.bodyLimit,
    // the body schema documents the route; the body is checked once, by the PageEvent contract itself
    validatorCompiler: (route: FastifyRouteSchemaDef<unknown>) =>
      route.httpPart === 'body' ? checkBody : TypeBoxValidatorCompiler({ ...route, schema: route.schema as TSchema }),
    schema: {
      params: Type.Object({ topic: TopicParam }),
      body: Type.Union([
        PageEventInputSchema,
        Type.Array(PageEventInputSchema, {
          minItems: 1, maxItems: options.maxBatch, description: `1 to ${options.maxBatch} PageEvents`,
        }),
      ], { description: 'a PageEvent or an array of them' }),
      response: { 200: Type.Object({ topic: Type.String(), results: Type.Array(PublishedEventSchema) }), ...errors },
    },
  }, async (request) => {
    // eventBodyCheck replaced the body by the parsed events
    const events = request.body as unknown as PageEvent[]
    const results = await publisher.publish(request.params.topic, events)
    return { topic: request.params.topic, results }
  })
}
