import { Type, type StaticDecode, type TObject } from '@sinclair/typebox'
import fp from 'fastify-plugin'
import {
  ROLE_PORTS, type Role, TopicName, commonConfig, connectionProperties, corsConfig, deadLetterTopic, replicaInstanceId,
  watchConsumerLag,
} from '@pagestream/core'
import { dashboardPlugin, webRoot } from './dashboard.js'
import { liveRoutes } from './live-routes.js'
import { ensureChangelog } from './changelog.js'
import { WindowProcessor } from './processor.js'
import { ensureRepartitionTopic, repartitionGroup, repartitionStage, repartitionTopic } from './repartition.js'
import { TimeSourceSchema, windowSpec } from './window-geometry.js'

const Millis = (defaultValue: number, description: string, minimum = 0) => Type.Integer({
  minimum, default: defaultValue, description,
})

const config = {
  ...commonConfig('analytics', ROLE_PORTS.analytics),
  ANALYTICS_INPUT_TOPIC: TopicName('R2', 'topic of page events to window'),
  ANALYTICS_OUTPUT_TOPIC: TopicName('R4', 'topic of window records, keyed by page'),
  ANALYTICS_CHANGELOG_TOPIC: TopicName(
    '', 'compacted changelog of window state (empty: <group id>-windows-changelog)', { optional: true }
  ),
  ANALYTICS_LATE_TOPIC: TopicName(
    '', 'topic for events later than the grace period (empty: <input>.late)', { optional: true }
  ),
  ANALYTICS_COMPAT_TOPIC: TopicName('', 'also write every window update as the lab did, to this topic: ' +
    'key = page (String), value = count (8-byte big-endian Long, for LongDeserializer readers); empty: not written',
  { optional: true }),
  ANALYTICS_GROUP_ID: Type.String({
    minLength: 1, default: 'pagestream-analytics', description: 'consumer group of the processor replicas',
  }),
  ANALYTICS_INSTANCE_ID: Type.String({
    default: '',
    description: 'id of this replica, unique per replica and stable across its restarts (a StatefulSet pod name); ' +
      'transactional.id is <group id>-<instance id>; empty: <hostname>-<pid>-<random>, new per process',
  }),
  ANALYTICS_STATIC_MEMBERSHIP: Type.Boolean({
    default: true,
    description: 'with ANALYTICS_INSTANCE_ID set, join the group as a static member ' +
      '(group.instance.id = transactional.id): a restart with the same instance id takes its partitions back ' +
      'without a rebalance; never without an instance id',
  }),
  ANALYTICS_INPUT_PARTITIONED_BY_PAGE: Type.Boolean({
    default: false,
    description: 'every writer keys the input by page with one partitioner: skip the repartition hop ' +
      '(<group id>-repartition) and window the input directly; false counts right whatever the keys and partitions',
  }),
  ANALYTICS_PROCESSOR: Type.Boolean({
    default: true, description: 'run the R2 -> R4 processor (false: serve the view of R4 only)',
  }),
  WINDOW_SIZE_MS: Millis(5_000, 'window length on event time', 1),
  WINDOW_ADVANCE_MS: Millis(0, 'hop between window starts; 0: equal to the size (tumbling windows)'),
  WINDOW_GRACE_MS: Millis(2_000, 'how long after its end a window still accepts out-of-order events'),
  WINDOW_TIME_SOURCE: TimeSourceSchema,
  WINDOW_IDLE_CLOSE_MS: Millis(5_000, 'an input partition without records this long closes its windows on the wall ' +
    'clock once their end plus the grace has passed (0: only new input closes windows)'),
  WINDOW_SLICE_MS: Millis(100, 'windows keep sub-totals per slice of this length, so rolling totals are exact to the ' +
    'slice; must divide the window size and advance, and the rolling spans must be whole slices', 1),
  EVENT_MAX_FUTURE_MS: Millis(60_000,
    'events dated further ahead of the clock go to the dead-letter topic (0: no limit); ' +
    'events within it count in their windows, but stream time never passes the wall clock, ' +
    'so they close no window early'),
  LONG_VIEW_THRESHOLD_MS: Millis(100, 'events with a longer duration count as long views'),
  COMMIT_INTERVAL_MS: Millis(500, 'transaction interval of the window processor: window updates, changelog and ' +
    'offsets commit together; shorter shows events on the dashboard sooner, longer writes fewer window updates', 10),
  ANALYTICS_REPARTITION_TRANSACTION_MS: Millis(50, 'longest a transaction of the re-keying stage stays open taking ' +
    'further batches (0: one per consumer batch); it adds up to this much latency before the windows see an event'),
  ANALYTICS_REPARTITION_BATCH_SIZE: Type.Integer({
    minimum: 1, maximum: 50_000, default: 5_000, description: 'most records per transaction of the re-keying stage',
  }),
  ANALYTICS_PREFETCH_RECORDS: Type.Integer({
    minimum: 1,
    default: 2_000,
    description: 'records per partition each processor consumer fetches ahead (librdkafka queued.min.messages)',
  }),
  ANALYTICS_PREFETCH_KB: Type.Integer({
    minimum: 64,
    default: 4_096,
    description: 'most kilobytes each processor consumer holds fetched ahead (librdkafka queued.max.messages.kbytes)',
  }),
  VIEW_RETENTION_MS: Millis(
    600_000, 'how much recent window history every replica holds for the SSE streams and the query API', 60_000
  ),
  ROLLING_COUNT_SPAN_MS: Millis(5_000, 'span of the rolling count on /analytics', 1),
  ROLLING_DURATION_SPAN_MS: Millis(30_000, 'span of the rolling duration sum on /analyticsAggregate', 1),
  SSE_INTERVAL_MS: Millis(1_000, 'SSE push interval (changes are pushed sooner)', 10),
  SSE_HEARTBEAT_MS: Millis(15_000, 'interval of the SSE heartbeat comment', 10),
  SSE_MAX_CLIENTS: Type.Integer({
    minimum: 1, default: 200, description: 'event-stream clients served at once; more get 503',
  }),
  SSE_CLIENT_BUFFER_BYTES: Type.Integer({
    minimum: 1024, default: 262_144, description: 'unread bytes after which a slow SSE client is dropped',
  }),
  SSE_REPLAY_EVENTS: Type.Integer({
    minimum: 1, default: 120, description: 'events per stream kept for Last-Event-ID resume',
  }),
  SSE_STALL_TIMEOUT_MS: Millis(30_000, 'an SSE client whose socket has not drained for this long is dropped', 100),
  ...corsConfig(),
  WEB_ROOT: Type.String({
    default: '', description: 'folder of the dashboard files (empty: the @pagestream/web package)',
  }),
}

export type AnalyticsConfig = StaticDecode<TObject<typeof config>>

export const role: Role<typeof config> = {
  name: 'analytics',
  description: 'event-time windows per page R2 -> R4 (exactly-once), live SSE view of R4 and the dashboard',
  config,
  check: (config) => { windowSpec(config) },
  app: async (fastify, { config }) => {
    const spec = windowSpec(config)
    const connection = connectionProperties(config)
    const rekey = !config.ANALYTICS_INPUT_PARTITIONED_BY_PAGE
    const topics = {
      // the windows read the input re-keyed by page, unless it is known to be keyed so already
      input: rekey ? repartitionTopic(config.ANALYTICS_GROUP_ID) : config.ANALYTICS_INPUT_TOPIC,
      output: config.ANALYTICS_OUTPUT_TOPIC,
      changelog: config.ANALYTICS_CHANGELOG_TOPIC || `${config.ANALYTICS_GROUP_ID}-windows-changelog`,
      late: config.ANALYTICS_LATE_TOPIC || `${config.ANALYTICS_INPUT_TOPIC}.late`,
      deadLetter: deadLetterTopic(config.ANALYTICS_INPUT_TOPIC),
      compat: config.ANALYTICS_COMPAT_TOPIC || undefined,
    }
    // security headers first, so that every route of the role gets them
    await fastify.register(fp(dashboardPlugin), { root: config.WEB_ROOT || webRoot() })
    // R2, not topics.input: the repartition topic is created with R2's partition count below
    const created = [config.ANALYTICS_INPUT_TOPIC, topics.output, topics.late, topics.deadLetter, topics.compat]
    await fastify.kafka.ensureTopics(created.filter((topic) => topic !== undefined).map((topic) => ({ topic })))

    if (config.ANALYTICS_PROCESSOR) {
      const replica = replicaInstanceId(config.ANALYTICS_INSTANCE_ID)
      const instanceId = replica.id
      // a generated id is new per process: a static member of that name would never come back
      const staticMembership = config.ANALYTICS_STATIC_MEMBERSHIP && replica.configured
      const { admin } = fastify.kafka
      const prefetch = { records: config.ANALYTICS_PREFETCH_RECORDS, kilobytes: config.ANALYTICS_PREFETCH_KB }
      const starting: Array<Promise<void>> = []
      // R2's partition count, which the repartition topic has too
      await ensureChangelog(admin, config.ANALYTICS_INPUT_TOPIC, topics.changelog, config.KAFKA_TOPIC_REPLICATION)
      if (rekey) {
        await ensureRepartitionTopic(admin, config.ANALYTICS_INPUT_TOPIC, topics.input, config.KAFKA_TOPIC_REPLICATION)
        const stage = repartitionStage({
          client: fastify.kafka.client,
          log: fastify.log.child({ component: 'repartition' }),
          metrics: fastify.metrics,
          input: config.ANALYTICS_INPUT_TOPIC,
          output: topics.input,
          deadLetter: topics.deadLetter,
          groupId: config.ANALYTICS_GROUP_ID,
          instanceId,
          staticMembership,
          transactionMs: config.ANALYTICS_REPARTITION_TRANSACTION_MS,
          batchSize: config.ANALYTICS_REPARTITION_BATCH_SIZE,
          prefetch,
        })
        fastify.addHook('onClose', async () => { await stage.stop() })
        fastify.health.addCheck('repartition', () => {
          const problem = stage.problem ?? (stage.assignment === undefined ? 'joining its consumer group' : undefined)
          if (problem !== undefined) return { ok: false, detail: problem }
          const owned = stage.assignment?.length
          return { ok: true, detail: `${owned} partition(s) of ${config.ANALYTICS_INPUT_TOPIC} assigned` }
        })
        // the stage and the windows start side by side: a restart is ready sooner
        starting.push(stage.start())
      }
      const processor = new WindowProcessor({
        client: fastify.kafka.client,
        connection,
        log: fastify.log.child({ component: 'processor' }),
        metrics: fastify.metrics,
        topics,
        groupId: config.ANALYTICS_GROUP_ID,
        instanceId,
        staticMembership,
        spec,
        timeSource: config.WINDOW_TIME_SOURCE,
        idleCloseMs: config.WINDOW_IDLE_CLOSE_MS,
        longViewThresholdMs: config.LONG_VIEW_THRESHOLD_MS,
        maxFutureMs: config.EVENT_MAX_FUTURE_MS,
        commitIntervalMs: config.COMMIT_INTERVAL_MS,
        // the re-keying stage checked every record it wrote there: no second validation
        inputValidated: rekey,
        prefetch,
      })
      fastify.health.addCheck('processor', () => processor.readiness())
      fastify.addHook('onClose', async () => { await processor.stop() })
      starting.push(processor.start())
      // both settle before a failure closes the role, so that no client is closed while it opens
      const failed = (await Promise.allSettled(starting)).find((result) => result.status === 'rejected')
      if (failed !== undefined) throw failed.reason
      fastify.log.info({ topics, spec, transactionalId: processor.transactionalId }, 'processor started')
      const rekeyLag = { group: repartitionGroup(config.ANALYTICS_GROUP_ID), topic: config.ANALYTICS_INPUT_TOPIC }
      const windowLag = { group: config.ANALYTICS_GROUP_ID, topic: topics.input }
      await watchConsumerLag(fastify, [...(rekey ? [rekeyLag] : []), windowLag])
    }

    await fastify.register(liveRoutes, {
      admin: fastify.kafka.admin,
      connection,
      metrics: fastify.metrics,
      outputTopic: topics.output,
      retentionMs: config.VIEW_RETENTION_MS,
      countSpanMs: config.ROLLING_COUNT_SPAN_MS,
      durationSpanMs: config.ROLLING_DURATION_SPAN_MS,
      intervalMs: config.SSE_INTERVAL_MS,
      sse: {
        maxClients: config.SSE_MAX_CLIENTS,
        clientBufferBytes: config.SSE_CLIENT_BUFFER_BYTES,
        heartbeatMs: config.SSE_HEARTBEAT_MS,
        replayEvents: config.SSE_REPLAY_EVENTS,
        stallTimeoutMs: config.SSE_STALL_TIMEOUT_MS,
      },
      corsOrigins: config.CORS_ORIGINS,
    })
  },
}
