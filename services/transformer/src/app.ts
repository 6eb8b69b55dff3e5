import { Type, type Static, type StaticDecode, type TObject } from '@sinclair/typebox'
import type { FastifyInstance } from 'fastify'
import {
  ROLE_PORTS, type Role, TopicName, commonConfig, deadLetterTopic, replicaInstanceId, streamTaskMetrics,
  watchConsumerLag,
} from '@pagestream/core'
import { transformProcessor } from './processor.js'

const config = {
  ...commonConfig('transformer', ROLE_PORTS.transformer),
  TRANSFORMER_INPUT_TOPIC: TopicName('R1', 'topic of PageEvents to transform'),
  TRANSFORMER_OUTPUT_TOPIC: TopicName('R3', 'topic the transformed PageEvents are written to'),
  TRANSFORMER_GROUP_ID: Type.String({
    minLength: 1, default: 'pagestream-transformer', description: 'consumer group of the transformer replicas',
  }),
  TRANSFORMER_INSTANCE_ID: Type.String({
    pattern: '^[a-zA-Z0-9._-]{0,200}$',
    default: '',
    description: 'stable name of this replica, unique among the replicas (transactional.id and group.instance.id are ' +
      'derived from it); a restart with the same name fences its predecessor. ' +
      'Empty: <hostname>-<pid>-<random>, new per process, dynamic member',
  }),
  TRANSFORMER_STATIC_MEMBERSHIP: Type.Boolean({
    default: true,
    description: 'join the group as a static member (group.instance.id) when TRANSFORMER_INSTANCE_ID is set: ' +
      'a restart under the same id gets its partitions back at once; turn off when ids change on every restart',
  }),
  TRANSFORMER_BATCH_SIZE: Type.Integer({
    minimum: 1,
    maximum: 10_000,
    default: 2_000,
    description: 'most input records per transaction: a transaction commits once it holds this many',
  }),
  TRANSFORMER_TRANSACTION_MS: Type.Integer({
    minimum: 0,
    maximum: 60_000,
    default: 50,
    description: 'longest a transaction stays open taking further batches before it commits (0: one transaction ' +
      'per consumer batch); longer means fewer commits under load and later visibility in the output',
  }),
  TRANSFORMER_DELIVERY_TIMEOUT_MS: Type.Integer({
    minimum: 1_000,
    maximum: 300_000,
    default: 10_000,
    description: 'longest wait for the broker to acknowledge a transaction\'s records before the transaction is ' +
      'aborted and retried (transaction.timeout.ms is 10 s more)',
  }),
}

type TransformerConfig = StaticDecode<TObject<typeof config>>

const StatusSchema = Type.Object({
  inputTopic: Type.String(),
  outputTopic: Type.String(),
  deadLetterTopic: Type.String(),
  groupId: Type.String(),
  transactionalId: Type.String(),
  groupInstanceId: Type.Union([Type.String(), Type.Null()], { description: 'group.instance.id when a static member' }),
  assignment: Type.Union(
    [Type.Array(Type.Integer()), Type.Null()],
    { description: 'partitions of the input topic owned now; null before the group was joined' }
  ),
  counts: Type.Object({
    transformed: Type.Integer(),
    deadLettered: Type.Integer(),
    transactionsCommitted: Type.Integer(),
    transactionsAborted: Type.Integer(),
    producerReplacements: Type.Integer(),
    timesFenced: Type.Integer(),
    consumerFatalErrors: Type.Integer({ description: 'fatal consumer errors, each followed by new clients' }),
  }),
  lastError: Type.Union([Type.String(), Type.Null()]),
})
type Status = Static<typeof StatusSchema>

async function transformer (fastify: FastifyInstance, { config }: { config: TransformerConfig }) {
  const deadLetters = deadLetterTopic(config.TRANSFORMER_INPUT_TOPIC)
  // the input too, so the transformer can start before anything was published
  await fastify.kafka.ensureTopics([
    { topic: config.TRANSFORMER_INPUT_TOPIC }, { topic: config.TRANSFORMER_OUTPUT_TOPIC }, { topic: deadLetters },
  ])

  // a static member needs an id given on purpose: two processes with one default id would fence each other
  const replica = replicaInstanceId(config.TRANSFORMER_INSTANCE_ID)
  const staticMembership = config.TRANSFORMER_STATIC_MEMBERSHIP && replica.configured
  const processor = transformProcessor(fastify.kafka.client, {
    inputTopic: config.TRANSFORMER_INPUT_TOPIC,
    outputTopic: config.TRANSFORMER_OUTPUT_TOPIC,
    deadLetterTopic: deadLetters,
    groupId: config.TRANSFORMER_GROUP_ID,
    instanceId: `${config.TRANSFORMER_GROUP_ID}-${replica.id}`,
    batchSize: config.TRANSFORMER_BATCH_SIZE,
    transactionMs: config.TRANSFORMER_TRANSACTION_MS,
    staticMembership,
    deliveryTimeoutMs: config.TRANSFORMER_DELIVERY_TIMEOUT_MS,
  }, fastify.log.child({ component: 'transformer' }), streamTaskMetrics(fastify.metrics, {
    prefix: 'pagestream_transformer',
    verb: 'transformed',
    writtenHelp: 'input records written transformed to the output topic (committed transactions only)',
  }))
  const counts = (): Status['counts'] => {
    const { written, ...rest } = processor.counts
    return { transformed: written, ...rest }
  }
  fastify.addHook('onClose', async () => {
    await processor.stop()
    fastify.log.info(counts(), 'transformer stopped')
  })
  await processor.start()
  await watchConsumerLag(fastify, [{ group: config.TRANSFORMER_GROUP_ID, topic: config.TRANSFORMER_INPUT_TOPIC }])

  fastify.health.addCheck('consumer-group', () => {
    const assignment = processor.assignment
    return assignment === undefined
      ? { ok: false, detail: `joining consumer group ${config.TRANSFORMER_GROUP_ID}` }
      : { ok: true, detail: `${assignment.length} partition(s) of ${config.TRANSFORMER_INPUT_TOPIC} assigned` }
  })
  fastify.health.addCheck('transactions', () => {
    const problem = processor.problem
    return problem === undefined ? { ok: true } : { ok: false, detail: problem }
  })

  fastify.get('/status', { schema: { response: { 200: StatusSchema } } }, async (): Promise<Status> => ({
    inputTopic: config.TRANSFORMER_INPUT_TOPIC,
    outputTopic: config.TRANSFORMER_OUTPUT_TOPIC,
    deadLetterTopic: deadLetters,
    groupId: config.TRANSFORMER_GROUP_ID,
    transactionalId: processor.transactionalId,
    groupInstanceId: staticMembership ? processor.transactionalId : null,
    assignment: processor.assignment?.map((p) => p.partition).sort((a, b) => a - b) ?? null,
    counts: counts(),
    lastError: processor.lastError ?? null,
  }))
}

export const role = {
  name: 'transformer',
  description: "the lab's function: R1 -> R3 with duration doubled and name and user upper-cased, exactly once",
  config,
  app: transformer,
} satisfies Role<typeof config>
