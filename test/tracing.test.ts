import t from 'tap'
import {
  deleteTopics, readTopic, startRole, uniqueName, waitFor, writeRecords,
} from '@pagestream/test-kit'
import { type ExportedSpan, startCollector } from '@pagestream/test-kit/otelcol'

const SERVER = 2
const PRODUCER = 4
const CONSUMER = 5

/** The span of a trace with this service and name, once the collector has passed it on. */
function find (spans: ExportedSpan[], traceId: string, service: string, name: string): ExportedSpan | undefined {
  return spans.find((s) => s.traceId === traceId && s.service === service && s.name === name)
}

t.test('one event published over HTTP is one trace through producer, transformer, consumer and analytics',
  async (t) => {
    const collector = await startCollector(t)
    const topic = uniqueName('trace-r1')
    const output = uniqueName('trace-r3')
    const windows = uniqueName('trace-r4')
    const groups = {
      consumer: uniqueName('trace-cons'), transformer: uniqueName('trace-tr'), analytics: uniqueName('trace-an'),
    }
    const internal = [`${groups.analytics}-windows-changelog`, `${groups.analytics}-repartition`]
    t.teardown(() => deleteTopics([topic, `${topic}.dlq`, `${topic}.late`, output, windows, ...internal]))
    const common = {
      KAFKA_TOPIC_PARTITIONS: '1',
      LOG_LEVEL: 'warn',
      OTEL_EXPORTER_OTLP_ENDPOINT: collector.endpoint,
      // export within a tenth of a second, not the SDK's 5 s, so the test waits for spans, not for a timer
      OTEL_BSP_SCHEDULE_DELAY: '100',
    }
    // four roles start at once on two shared cores: readiness (a group join each) may take a while
    const slow = { readyTimeoutMs: 90_000 }
    const producer = await startRole(t, 'producer', { ...common, PRODUCER_TOPICS: topic }, slow)
    const roles = await Promise.all([
      startRole(t, 'consumer', { ...common, CONSUMER_TOPIC: topic, CONSUMER_GROUP_ID: groups.consumer }, slow),
      startRole(t, 'transformer', {
        ...common,
        TRANSFORMER_INPUT_TOPIC: topic,
        TRANSFORMER_OUTPUT_TOPIC: output,
        TRANSFORMER_GROUP_ID: groups.transformer,
      }, slow),
      startRole(t, 'analytics', {
        ...common, ANALYTICS_INPUT_TOPIC: topic, ANALYTICS_OUTPUT_TOPIC: windows, ANALYTICS_GROUP_ID: groups.analytics,
      }, slow),
    ])

    const response = await fetch(`${producer.url}/publish/${topic}/traced-page`)
    t.equal(response.status, 200, 'published')
    const [transformed] = await readTopic(output, { count: 1, settleMs: 0 })
    const traceparent = transformed?.headers.traceparent
    t.match(traceparent, /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/, 'the R3 record carries a W3C traceparent')
    const [, traceId, r3SpanId] = (traceparent ?? '').split('-')

    const repartition = `${groups.analytics}-repartition`
    const wanted: Array<[string, string]> = [
      ['producer', 'GET /publish/:topic/:name'], ['producer', `send ${topic}`],
      ['transformer', `process ${topic}`], ['transformer', `create ${output}`],
      ['consumer', `process ${topic}`],
      ['analytics', `process ${topic}`],
      ['analytics', `create ${repartition}`],
      ['analytics', `process ${repartition}`],
    ]
    const trace = await waitFor('every span of the trace at the collector', () => {
      const spans = collector.spans()
      return wanted.every(([service, name]) => find(spans, traceId!, service, name) !== undefined) &&
        spans.filter((s) => s.traceId === traceId)
    }, 30_000, 100)
    const span = (service: string, name: string) => find(trace, traceId!, service, name)!

    const http = span('producer', 'GET /publish/:topic/:name')
    t.equal(http.kind, SERVER, 'the HTTP request is a server span')
    t.equal(http.parentSpanId, '', 'and the root of the trace')
    t.equal(http.attributes['http.response.status_code'], 200)
    const send = span('producer', `send ${topic}`)
    t.match(send, { kind: PRODUCER, parentSpanId: http.spanId }, 'the send is a producer span under the request')
    t.match(send.attributes, { 'messaging.system': 'kafka', 'messaging.destination.name': topic })

    for (const role of ['consumer', 'transformer', 'analytics']) {
      const processed = span(role, `process ${topic}`)
      t.match(processed, { kind: CONSUMER, parentSpanId: send.spanId }, `${role}: process span, a child of the send`)
      t.same(processed.links, [{ traceId, spanId: send.spanId }], `${role}: linked to the record's creation context`)
      t.equal(processed.attributes['messaging.operation.type'], 'process')
    }
    t.equal(span('consumer', `process ${topic}`).attributes['messaging.consumer.group.name'], groups.consumer)

    const create = span('transformer', `create ${output}`)
    t.match(create, { kind: PRODUCER, parentSpanId: span('transformer', `process ${topic}`).spanId },
      'the R3 write is a create span under the transformer\'s processing')
    t.equal(create.spanId, r3SpanId, 'and it is the context the R3 record carries')
    const rekeyed = span('analytics', `create ${repartition}`)
    t.equal(span('analytics', `process ${repartition}`).parentSpanId, rekeyed.spanId,
      'the analytics window stage continues the trace through the repartition topic')
    t.equal(new Set(trace.map((s) => s.service)).size, 4, 'four services in one trace')

    t.test('POST /events continues the caller\'s trace', async (t) => {
      const caller = { trace: 'a'.repeat(32), span: 'd'.repeat(16) }
      const posted = await fetch(`${producer.url}/events/${topic}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', traceparent: `00-${caller.trace}-${caller.span}-01` },
        body: JSON.stringify({ name: 'posted-page', user: 'U1', date: new Date().toISOString(), duration: 5 }),
      })
      t.equal(posted.status, 200)
      const spans = await waitFor('the request and its send at the collector', () => {
        const request = find(collector.spans(), caller.trace, 'producer', 'POST /events/:topic')
        const sent = find(collector.spans(), caller.trace, 'producer', `send ${topic}`)
        return request !== undefined && sent !== undefined && { request, sent }
      }, 30_000, 100)
      t.equal(spans.request.parentSpanId, caller.span, 'the server span is a child of the caller\'s')
      t.equal(spans.sent.parentSpanId, spans.request.spanId, 'the send a child of the server span')
    })

    t.test('a dead letter keeps the record\'s traceparent, and its processing joins that trace', async (t) => {
      const given = { trace: 'b'.repeat(32), span: 'c'.repeat(16) }
      const header = `00-${given.trace}-${given.span}-01`
      await writeRecords(topic, [{ key: 'bad', value: 'not a page event', headers: { traceparent: header } }])
      const letters = await readTopic(`${topic}.dlq`, { count: 3, settleMs: 0 })
      t.same(letters.map((l) => l.headers['dlq-role']).sort(), ['analytics', 'consumer', 'transformer'],
        'each reading role dead-lettered it')
      t.ok(letters.every((l) => l.headers.traceparent === header), 'every dead letter keeps the traceparent as it came')
      const processed = await waitFor('the consumer\'s process span of the poison record', () =>
        find(collector.spans(), given.trace, 'consumer', `process ${topic}`), 30_000, 100)
      t.equal(processed.parentSpanId, given.span, 'parented by the record\'s context')
    })
    // stopped before the collector, so their last spans are flushed to it on the way out
    await t.test('the roles stop', async (t) => {
      const codes = await Promise.all([producer, ...roles].map((role) => role.stop()))
      t.same(codes, [0, 0, 0, 0], 'each exited 0')
    })
  })

t.test('the supplier starts one trace per event, and flushes its spans when it stops', async (t) => {
  const collector = await startCollector(t)
  const topic = uniqueName('trace-r2')
  t.teardown(() => deleteTopics([topic]))
  const supplier = await startRole(t, 'supplier', {
    SUPPLIER_TOPIC: topic,
    SUPPLIER_INTERVAL_MS: '100',
    LOG_LEVEL: 'warn',
    OTEL_EXPORTER_OTLP_ENDPOINT: collector.endpoint,
    // no export by timer during the test: the spans can reach the collector only through the flush on shutdown
    OTEL_BSP_SCHEDULE_DELAY: '600000',
  })
  const records = await readTopic(topic, { count: 3, settleMs: 0 })
  t.equal(collector.spans().length, 0, 'nothing exported while it runs')
  t.equal(await supplier.stop(), 0, 'stopped by SIGTERM, exit 0')
  const sends = collector.spans().filter((s) => s.service === 'supplier' && s.name === `send ${topic}`)
  t.ok(sends.length >= records.length, 'every supplied event\'s span was exported on the way out')
  t.ok(sends.every((s) => s.parentSpanId === '' && s.kind === PRODUCER), 'each send is the root of its trace')
  t.equal(new Set(sends.map((s) => s.traceId)).size, sends.length, 'one trace each')
  const carried = records.map((record) => record.headers.traceparent?.split('-')[1])
  t.ok(carried.every((traceId) => sends.some((s) => s.traceId === traceId)), 'each record carries its trace')
})
