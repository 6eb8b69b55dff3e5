import { Type } from '@sinclair/typebox'
import type { FastifyInstance } from 'fastify'
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox'
import { ErrorResponse, HttpError, type Admin, allowCrossOrigin } from '@pagestream/core'
import { Counter, type Registry } from 'prom-client'
import { SseHub } from './sse.js'
import { AnalyticsView } from './view.js'
import { ViewFeed } from './view-feed.js'
import { WindowRecordSchema } from './window-record.js'

export interface LiveOptions {
  admin: Admin
  connection: Record<string, string>
  metrics: Registry
  outputTopic: string
  retentionMs: number
  countSpanMs: number
  durationSpanMs: number
  intervalMs: number
  sse: {
    maxClients: number,
    clientBufferBytes: number,
    stallTimeoutMs: number,
    heartbeatMs: number,
    replayEvents: number
  }
  /** Origins whose pages may read the streams and the query API (CORS); empty: none. */
  corsOrigins: readonly string[]
}

/** Soonest a change in R4 is pushed after the previous push. */
const CHANGE_PUSH_DELAY_MS = 100

const WindowsQuery = Type.Object({
  from: Type.Optional(
    Type.String({ format: 'date-time', description: 'start of the range (ISO 8601); default: the view retention ago' })
  ),
  to: Type.Optional(Type.String({ format: 'date-time', description: 'end of the range (ISO 8601); default: now' })),
})
const WindowsParams = Type.Object({ page: Type.String({ minLength: 1, maxLength: 256 }) })
const WindowsResponse = Type.Object({
  page: Type.String(),
  from: Type.String({ format: 'date-time' }),
  to: Type.String({ format: 'date-time' }),
  windows: Type.Array(WindowRecordSchema),
})

/** The view of R4 every replica holds, its two event streams, and the query API. */
export async function liveRoutes (fastify: FastifyInstance, options: LiveOptions): Promise<void> {
  const app = fastify.withTypeProvider<TypeBoxTypeProvider>()
  const combinedFinals = new Counter({
    name: 'analytics_view_combined_finals_total',
    help: 'final window records from a second writer of one page-window, summed by the view (none with the hop)',
    registers: [options.metrics],
  })
  const view = new AnalyticsView(options.retentionMs, (page, windowStart, finals) => {
    combinedFinals.inc()
    fastify.log.warn({ page, windowStart, finals },
      'a page-window has finals from several writers; the view sums them (is the input really keyed by page?)')
  })
  const hub = new SseHub({ ...options.sse, log: fastify.log.child({ component: 'sse' }), metrics: options.metrics })
  // EventSource sends Last-Event-ID when it reconnects
  await allowCrossOrigin(fastify, { origins: options.corsOrigins, methods: ['GET'], allowedHeaders: ['last-event-id'] })

  const push = () => {
    const now = Date.now()
    view.prune(now)
    hub.publish('analytics', JSON.stringify(view.rolling(now, options.countSpanMs, 'count')))
    hub.publish('analyticsAggregate', JSON.stringify(view.rolling(now, options.durationSpanMs, 'durationSum')))
  }
  let lastPush = 0
  let pending: NodeJS.Timeout | undefined
  const pushNow = () => {
    clearTimeout(pending)
    pending = undefined
    lastPush = Date.now()
    push()
  }
  const ticker = setInterval(pushNow, options.intervalMs)
  const onChange = () => {
    if (pending !== undefined) return
    pending = setTimeout(pushNow, Math.max(0, lastPush + CHANGE_PUSH_DELAY_MS - Date.now()))
  }

  const feed = new ViewFeed({
    admin: options.admin,
    connection: options.connection,
    topic: options.outputTopic,
    view,
    log: fastify.log.child({ component: 'view' }),
    onChange,
  })
  fastify.health.addCheck('view', () => feed.readiness())
  fastify.addHook('preClose', async () => {
    clearInterval(ticker)
    clearTimeout(pending)
    hub.close()
  })
  fastify.addHook('onClose', async () => { await feed.stop() })
  await feed.start()

  app.get('/analytics', {
    schema: {
      description: `SSE: page -> events over the last ${options.countSpanMs} ms, about every ${options.intervalMs} ms`,
      response: { 503: ErrorResponse },
    },
  }, (request, reply) => { hub.open('analytics', request, reply) })

  app.get('/analyticsAggregate', {
    schema: {
      description: `SSE: page -> sum of duration over the last ${options.durationSpanMs} ms`,
      response: { 503: ErrorResponse },
    },
  }, (request, reply) => { hub.open('analyticsAggregate', request, reply) })

  app.get('/api/pages/:page/windows', {
    schema: {
      params: WindowsParams, querystring: WindowsQuery, response: { 200: WindowsResponse, 400: ErrorResponse },
    },
  }, async (request) => {
    const now = Date.now()
    const from = request.query.from === undefined ? now - options.retentionMs : Date.parse(request.query.from)
    const to = request.query.to === undefined ? now : Date.parse(request.query.to)
    if (from > to) throw new HttpError(400, 'querystring.from must not be after querystring.to')
    const { page } = request.params
    return {
      page, from: new Date(from).toISOString(), to: new Date(to).toISOString(), windows: view.windows(page, from, to),
    }
  })
}
