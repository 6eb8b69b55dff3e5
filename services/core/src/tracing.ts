import type * as OtelApi from '@opentelemetry/api'
import { Type } from '@sinclair/typebox'
import type { FastifyInstance, FastifyRequest } from 'fastify'
import type { KafkaMessage } from './kafka.js'
import type { BatchResult, OutgoingRecord } from './stream-task-types.js'

// Types only: @opentelemetry/* is imported (by tracing-sdk.ts) only once tracing is switched on.
type Sdk = ReturnType<typeof import('./tracing-sdk.js').startSdk>
type Headers = NonNullable<KafkaMessage['headers']>

/** The record headers that carry a trace (W3C Trace Context). */
export const TRACE_HEADERS = ['traceparent', 'tracestate'] as const

/** The standard OpenTelemetry variables a role reads itself (the SDK reads the other OTEL_* ones). */
export function tracingConfig (role: string) {
  return {
    OTEL_EXPORTER_OTLP_ENDPOINT: Type.String({
      default: '',
      description: 'OTLP/HTTP collector base URL (e.g. http://localhost:4318): traces on when set; ' +
        'empty: off, no SDK loaded',
    }),
    OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: Type.String({
      default: '', description: 'full OTLP/HTTP traces URL (…/v1/traces); also switches traces on',
    }),
    OTEL_SERVICE_NAME: Type.String({ minLength: 1, default: role, description: 'service.name of the spans' }),
  }
}

interface TracingSettings {
  OTEL_EXPORTER_OTLP_ENDPOINT: string
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: string
  OTEL_SERVICE_NAME: string
}

let sdk: Sdk | undefined

/** Loads and starts the SDK when an OTLP endpoint is set; otherwise does nothing (and loads nothing). */
export async function startTracing (settings: TracingSettings): Promise<boolean> {
  if (sdk !== undefined) return true
  const base = settings.OTEL_EXPORTER_OTLP_ENDPOINT.replace(/\/+$/, '')
  // the specification's rule: the signal's own variable as it is, else the base URL plus /v1/traces
  const url = settings.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT || (base === '' ? '' : `${base}/v1/traces`)
  if (url === '') return false
  const { startSdk } = await import('./tracing-sdk.js')
  sdk = startSdk(settings.OTEL_SERVICE_NAME, url)
  return true
}

/** Exports the spans still buffered and stops the SDK (a role's last step on shutdown). */
export async function stopTracing (): Promise<void> {
  const running = sdk
  sdk = undefined
  await running?.shutdown()
}

const KAFKA = { 'messaging.system': 'kafka' }

/** A Kafka header as text: the first value when it repeats. */
function headerText (headers: Headers, name: string): string | undefined {
  const value = headers[name]
  const first = Array.isArray(value) ? value[0] : value
  return first === undefined ? undefined : first.toString()
}

const headerGetter: OtelApi.TextMapGetter<Headers> = { keys: (headers) => Object.keys(headers), get: headerText }

/** The record's headers with the trace context of `context` written in (traceparent, tracestate). */
function withContext (on: Sdk, context: OtelApi.Context, headers: Headers | undefined): Headers {
  const carrier: Record<string, string> = {}
  on.api.propagation.inject(context, carrier)
  return { ...(headers ?? {}), ...carrier }
}

/**
 * Sends one record inside a producer span ("send <topic>", a child of the active span: the HTTP
 * request's, or none for a trace per record), whose context the record carries in its headers.
 */
export async function tracedSend<R extends { headers?: Headers }, T> (
  topic: string, record: R, send: (record: R) => Promise<T>
): Promise<T> {
  const on = sdk
  if (on === undefined) return await send(record)
  const { api } = on
  const span = on.tracer.startSpan(`send ${topic}`, {
    kind: api.SpanKind.PRODUCER,
    attributes: {
      ...KAFKA,
      'messaging.operation.type': 'send',
      'messaging.operation.name': 'send',
      'messaging.destination.name': topic
    },
  })
  const traced = { ...record, headers: withContext(on, api.trace.setSpan(api.context.active(), span), record.headers) }
  try {
    return await send(traced)
  } catch (err) {
    span.recordException(err as Error)
    span.setStatus({ code: api.SpanStatusCode.ERROR, message: (err as Error).message })
    throw err
  } finally {
    span.end()
  }
}

export interface ConsumedBatch {
  topic: string
  partition: number
  messages: KafkaMessage[]
}

interface Processing { spans: OtelApi.Span[], byParent: Map<string, OtelApi.Span> }

/**
 * One "process <topic>" consumer span per record, for the time `work` takes on the batch. Each span
 * is a child of the record's creation context and links to it: the messaging conventions require the
 * link (batches), and allow the parent for one message, which keeps a record's path in one trace.
 */
export function traceConsumed<T> (batch: ConsumedBatch, group: string, work: () => T): T {
  const on = sdk
  if (on === undefined) return work()
  const processing = startProcessing(on, batch, group)
  let result: T
  try {
    result = work()
  } catch (err) {
    endProcessing(on, processing, err)
    throw err
  }
  if (result instanceof Promise) {
    return result.then(
      (value: unknown) => { endProcessing(on, processing); return value },
      (err: unknown) => { endProcessing(on, processing, err); throw err }
    ) as T
  }
  endProcessing(on, processing)
  return result
}

/**
 * traceConsumed for a stream task's batch function: each output record that carries its input's
 * trace header gets a "create <topic>" producer span, a child of that input's process span, instead.
 */
export function traceBatch (batch: ConsumedBatch, group: string, work: () => BatchResult): BatchResult {
  const on = sdk
  if (on === undefined) return work()
  const processing = startProcessing(on, batch, group)
  let failure: unknown
  try {
    const result = work()
    return {
      ...result,
      outputs: result.outputs.map(({ topic, messages }) => ({
        topic, messages: messages.map((record) => created(on, processing, topic, record)),
      }))
    }
  } catch (err) {
    failure = err
    throw err
  } finally {
    endProcessing(on, processing, failure)
  }
}

function startProcessing (on: Sdk, batch: ConsumedBatch, group: string): Processing {
  const { api } = on
  const processing: Processing = { spans: [], byParent: new Map() }
  for (const message of batch.messages) {
    const headers = message.headers ?? {}
    const parent = api.propagation.extract(api.ROOT_CONTEXT, headers, headerGetter)
    const creation = api.trace.getSpanContext(parent)
    const span = on.tracer.startSpan(`process ${batch.topic}`, {
      kind: api.SpanKind.CONSUMER,
      links: creation === undefined ? [] : [{ context: creation }],
      attributes: {
        ...KAFKA,
        'messaging.operation.type': 'process',
        'messaging.operation.name': 'process',
        'messaging.destination.name': batch.topic,
        'messaging.destination.partition.id': String(batch.partition),
        'messaging.consumer.group.name': group,
        'messaging.kafka.offset': Number(message.offset),
      },
    }, parent)
    processing.spans.push(span)
    const traceparent = headerText(headers, 'traceparent')
    if (traceparent !== undefined && !processing.byParent.has(traceparent)) {
      processing.byParent.set(traceparent, span)
    }
  }
  return processing
}

function endProcessing (on: Sdk, processing: Processing, err?: unknown): void {
  for (const span of processing.spans) {
    if (err !== undefined) {
      span.recordException(err as Error)
      span.setStatus({ code: on.api.SpanStatusCode.ERROR, message: (err as Error).message })
    }
    span.end()
  }
  processing.spans.length = 0
}

function created (on: Sdk, processing: Processing, topic: string, record: OutgoingRecord): OutgoingRecord {
  const traceparent = record.headers === undefined ? undefined : headerText(record.headers, 'traceparent')
  const input = traceparent === undefined ? undefined : processing.byParent.get(traceparent)
  if (input === undefined) return record
  const { api } = on
  const parent = api.trace.setSpan(api.ROOT_CONTEXT, input)
  const span = on.tracer.startSpan(`create ${topic}`, {
    kind: api.SpanKind.PRODUCER,
    attributes: {
      ...KAFKA,
      'messaging.operation.type': 'create',
      'messaging.operation.name': 'create',
      'messaging.destination.name': topic
    },
  }, parent)
  span.end()
  return { ...record, headers: withContext(on, api.trace.setSpan(parent, span), record.headers) }
}

/**
 * The trace headers of a consumed record, for a record written on its behalf; undefined when it carries none
 * (tracing off upstream), so the per-record path allocates nothing then.
 */
export function carriedTrace (message: KafkaMessage): Record<string, string> | undefined {
  const headers = message.headers
  if (headers === undefined) return undefined
  let carried: Record<string, string> | undefined
  for (const name of TRACE_HEADERS) {
    const value = headerText(headers, name)
    if (value !== undefined) (carried ??= {})[name] = value
  }
  return carried
}

declare module 'fastify' {
  interface FastifyRequest { serverSpan?: OtelApi.Span }
}

/**
 * A server span per request of this Fastify scope ("GET /publish/:topic/:name"), continuing a
 * caller's W3C trace context; handlers run inside it, so records they send join the trace.
 */
export function traceRequests (fastify: FastifyInstance): void {
  const on = sdk
  if (on === undefined) return
  const { api } = on
  fastify.addHook('onRequest', (request, _reply, done) => {
    const parent = api.propagation.extract(api.ROOT_CONTEXT, request.headers)
    const route = request.routeOptions.url ?? request.url.split('?')[0]
    request.serverSpan = on.tracer.startSpan(`${request.method} ${route}`, {
      kind: api.SpanKind.SERVER,
      attributes: {
        'http.request.method': request.method,
        'http.route': route,
        'url.path': request.url.split('?')[0],
        'url.scheme': request.protocol,
        'client.address': request.ip,
      },
    }, parent)
    done()
  })
  // the handler runs in the span's context: entered here, just before it, so body parsing cannot lose it
  fastify.addHook('preHandler', (request, _reply, done) => {
    if (request.serverSpan === undefined) { done(); return }
    api.context.with(api.trace.setSpan(api.context.active(), request.serverSpan), done)
  })
  const end = (request: FastifyRequest, status: number) => {
    const span = request.serverSpan
    if (span === undefined) return
    request.serverSpan = undefined
    span.setAttribute('http.response.status_code', status)
    if (status >= 500) span.setStatus({ code: api.SpanStatusCode.ERROR })
    span.end()
  }
  fastify.addHook('onResponse', (request, reply, done) => { end(request, reply.statusCode); done() })
  // the client went away before an answer: nginx's 499, as no status was sent
  fastify.addHook('onRequestAbort', (request, done) => { end(request, 499); done() })
}
